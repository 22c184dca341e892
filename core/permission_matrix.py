"""Who can do what: the answer each principal gets from each admin page and each API endpoint.

One table, two readers: tests/core/test_permission_matrix.py walks every principal against every entry
(and fails on a page or an endpoint the URL resolver serves that has no entry here), and
`manage.py permission_matrix --markdown` writes it as docs/permissions.md (a test fails when the page and
the table differ). A change of who may do what is a change of this table, reviewed with the code.

The admin entries are what a GET answers: 200 the page (a form, for the pages that act), 302 to the
login page (or, for a session that must enrol a second factor first, to enrolment), 403 refused. Opening
an action's page is not doing it: the service behind it checks the permission again when the form is sent
(core/roles.py lists each role's permissions).
"""

from __future__ import annotations

from pathlib import Path

DOCS_PAGE = Path(__file__).resolve().parent.parent / "docs" / "permissions.md"

# A signed-in session that must verify a second factor and has none yet (identity.middleware).
UNENROLLED = "approver, not enrolled"
ADMIN_PRINCIPALS: tuple[str, ...] = (
    "anonymous",
    "staff, no role",
    "Prompt authors",
    "Prompt approvers",
    "Key custodians",
    "Auditors",
    "superuser",
    UNENROLLED,
)
ADMIN_PRINCIPAL_HELP: dict[str, str] = {
    UNENROLLED: "a Prompt approver signed in with a password who has not enrolled a second factor yet: every "
    "page but enrolment answers a redirect to enrolment (**enrol**). The other principals' sessions are verified "
    "with a second factor where they must be (docs/admin.md, Two-factor authentication)",
}
# Each API principal is an API client of the environment the prompt `support-summary` is released to.
API_PRINCIPALS: tuple[str, ...] = (
    "anonymous",
    "prompt-bound",
    "free-form",
    "other prompts only",
    "inactive",
    "signature required, unsigned",
)
API_PRINCIPAL_HELP: dict[str, str] = {
    "anonymous": "no token",
    "prompt-bound": "may run `support-summary` (its allowed prompts), no free-form calls",
    "free-form": "free-form calls on (model `claude-haiku-4-5`), no prompt",
    "other prompts only": "may run other prompts, not `support-summary`",
    "inactive": "a client that was deactivated (its token otherwise valid)",
    "signature required, unsigned": "may run every prompt, but requires signed requests and sends none "
    "(401 `signature_required`; [signed requests](api.md#signed-requests))",
}

# Placeholders in braces stand for an object the walk makes; `{draft}` is a draft version, `{in_review}` a
# version in review, `{promptversion}` the version released to production; `{…_history}` one of the
# object's history rows.
ADMIN_PAGES: dict[str, tuple[int, ...]] = {
    "/admin/": (302, 200, 200, 200, 200, 200, 200, 302),
    "/admin/password_change/": (302, 200, 200, 200, 200, 200, 200, 302),
    "/admin/mfa/": (302, 200, 200, 200, 200, 200, 200, 302),
    "/admin/mfa/enrol/": (302, 200, 200, 200, 200, 200, 200, 200),
    "/admin/mfa/verify/": (302, 200, 200, 200, 200, 200, 200, 302),
    "/admin/auth/": (302, 404, 404, 404, 404, 404, 200, 302),
    "/admin/identity/": (302, 404, 404, 404, 404, 404, 200, 302),
    "/admin/audit/": (302, 404, 404, 200, 200, 200, 200, 302),
    "/admin/usage/": (302, 404, 200, 200, 200, 200, 200, 302),
    "/admin/keys/": (302, 404, 404, 404, 200, 200, 200, 302),
    "/admin/prompts/": (302, 404, 200, 200, 404, 200, 200, 302),
    "/admin/gateway/": (302, 404, 200, 200, 404, 200, 200, 302),
    "/admin/evaluations/": (302, 404, 200, 200, 404, 200, 200, 302),
    "/admin/auth/user/": (302, 403, 403, 403, 403, 403, 200, 302),
    "/admin/auth/user/add/": (302, 403, 403, 403, 403, 403, 200, 302),
    "/admin/auth/user/{user}/change/": (302, 403, 403, 403, 403, 403, 200, 302),
    "/admin/auth/user/{user}/delete/": (302, 403, 403, 403, 403, 403, 200, 302),
    "/admin/auth/user/{user}/history/": (302, 403, 403, 403, 403, 403, 200, 302),
    "/admin/auth/user/{user}/password/": (302, 403, 403, 403, 403, 403, 200, 302),
    "/admin/auth/user/{user}/mfa-reset/": (302, 403, 403, 403, 403, 403, 200, 302),
    # One's own sessions (each person's own page); another person's are a superuser's (docs/admin.md, Sessions).
    "/admin/auth/user/sessions/": (302, 200, 200, 200, 200, 200, 200, 302),
    "/admin/auth/user/{user}/sessions/": (302, 403, 403, 403, 403, 403, 200, 302),
    "/admin/auth/group/": (302, 403, 403, 403, 403, 403, 200, 302),
    "/admin/auth/group/add/": (302, 403, 403, 403, 403, 403, 200, 302),
    "/admin/auth/group/{group}/change/": (302, 403, 403, 403, 403, 403, 200, 302),
    "/admin/auth/group/{group}/delete/": (302, 403, 403, 403, 403, 403, 200, 302),
    "/admin/auth/group/{group}/history/": (302, 403, 403, 403, 403, 403, 200, 302),
    "/admin/identity/accessrequest/": (302, 403, 403, 403, 403, 403, 200, 302),
    "/admin/identity/accessrequest/add/": (302, 403, 403, 403, 403, 403, 200, 302),
    "/admin/identity/accessrequest/{accessrequest}/change/": (302, 403, 403, 403, 403, 403, 200, 302),
    "/admin/identity/accessrequest/{accessrequest}/delete/": (302, 403, 403, 403, 403, 403, 403, 302),
    "/admin/identity/accessrequest/{accessrequest}/history/": (302, 403, 403, 403, 403, 403, 200, 302),
    "/admin/identity/accessrequest/{accessrequest}/decide/approve/": (302, 403, 403, 403, 403, 403, 200, 302),
    "/admin/identity/accessrequest/{accessrequest}/decide/reject/": (302, 403, 403, 403, 403, 403, 200, 302),
    "/admin/audit/auditevent/": (302, 403, 403, 200, 200, 200, 200, 302),
    "/admin/audit/auditevent/add/": (302, 403, 403, 403, 403, 403, 403, 302),
    "/admin/audit/auditevent/{auditevent}/change/": (302, 403, 403, 200, 200, 200, 200, 302),
    "/admin/audit/auditevent/{auditevent}/delete/": (302, 403, 403, 403, 403, 403, 403, 302),
    "/admin/audit/auditevent/{auditevent}/history/": (302, 403, 403, 200, 200, 200, 200, 302),
    "/admin/audit/auditevent/evidence/": (302, 403, 403, 403, 403, 200, 200, 302),
    "/admin/usage/price/": (302, 403, 200, 200, 200, 200, 200, 302),
    "/admin/usage/price/add/": (302, 403, 403, 403, 200, 403, 200, 302),
    "/admin/usage/price/{price}/change/": (302, 403, 200, 200, 200, 200, 200, 302),
    "/admin/usage/price/{price}/delete/": (302, 403, 403, 403, 403, 403, 403, 302),
    "/admin/usage/price/{price}/history/": (302, 403, 200, 200, 200, 200, 200, 302),
    "/admin/usage/price/{price}/history/{price_history}/": (302, 403, 200, 200, 200, 200, 200, 302),
    "/admin/usage/price/calculator/": (302, 403, 200, 200, 200, 200, 200, 302),
    "/admin/usage/usagerecord/": (302, 403, 403, 200, 200, 200, 200, 302),
    "/admin/usage/usagerecord/add/": (302, 403, 403, 403, 403, 403, 403, 302),
    "/admin/usage/usagerecord/{usagerecord}/change/": (302, 403, 403, 200, 200, 200, 200, 302),
    "/admin/usage/usagerecord/{usagerecord}/delete/": (302, 403, 403, 403, 403, 403, 403, 302),
    "/admin/usage/usagerecord/{usagerecord}/history/": (302, 403, 403, 200, 200, 200, 200, 302),
    "/admin/usage/usagerecord/dashboard/": (302, 403, 403, 200, 200, 200, 200, 302),
    "/admin/usage/budgetalert/": (302, 403, 403, 200, 200, 200, 200, 302),
    "/admin/usage/budgetalert/add/": (302, 403, 403, 403, 403, 403, 403, 302),
    "/admin/usage/budgetalert/{budgetalert}/change/": (302, 403, 403, 200, 200, 200, 200, 302),
    "/admin/usage/budgetalert/{budgetalert}/delete/": (302, 403, 403, 403, 403, 403, 403, 302),
    "/admin/usage/budgetalert/{budgetalert}/history/": (302, 403, 403, 200, 200, 200, 200, 302),
    "/admin/usage/budgetalert/{budgetalert}/history/{budgetalert_history}/": (302, 403, 403, 200, 200, 200, 200, 302),
    "/admin/usage/monitoralert/": (302, 403, 403, 200, 200, 200, 200, 302),
    "/admin/usage/monitoralert/add/": (302, 403, 403, 403, 403, 403, 403, 302),
    "/admin/usage/monitoralert/{monitoralert}/change/": (302, 403, 403, 200, 200, 200, 200, 302),
    "/admin/usage/monitoralert/{monitoralert}/delete/": (302, 403, 403, 403, 403, 403, 403, 302),
    "/admin/usage/monitoralert/{monitoralert}/history/": (302, 403, 403, 200, 200, 200, 200, 302),
    "/admin/keys/providerkey/": (302, 403, 403, 403, 200, 200, 200, 302),
    "/admin/keys/providerkey/add/": (302, 403, 403, 403, 200, 403, 200, 302),
    "/admin/keys/providerkey/{providerkey}/change/": (302, 403, 403, 403, 200, 200, 200, 302),
    "/admin/keys/providerkey/{providerkey}/delete/": (302, 403, 403, 403, 403, 403, 403, 302),
    "/admin/keys/providerkey/{providerkey}/history/": (302, 403, 403, 403, 200, 200, 200, 302),
    "/admin/keys/providerkey/{providerkey}/history/{providerkey_history}/": (302, 403, 403, 403, 200, 200, 200, 302),
    "/admin/keys/providerkey/{providerkey}/rotate/": (302, 403, 403, 403, 200, 403, 200, 302),
    "/admin/keys/providerkey/{providerkey}/revoke/": (302, 403, 403, 403, 200, 403, 200, 302),
    "/admin/keys/apiclient/": (302, 403, 403, 403, 200, 200, 200, 302),
    "/admin/keys/apiclient/add/": (302, 403, 403, 403, 200, 403, 200, 302),
    "/admin/keys/apiclient/{apiclient}/change/": (302, 403, 403, 403, 200, 200, 200, 302),
    "/admin/keys/apiclient/{apiclient}/delete/": (302, 403, 403, 403, 403, 403, 403, 302),
    "/admin/keys/apiclient/{apiclient}/history/": (302, 403, 403, 403, 200, 200, 200, 302),
    "/admin/keys/apiclient/{apiclient}/history/{apiclient_history}/": (302, 403, 403, 403, 200, 200, 200, 302),
    "/admin/keys/apiclient/{apiclient}/tokens/new/": (302, 403, 403, 403, 200, 403, 200, 302),
    "/admin/keys/apiclient/{apiclient}/tokens/{apitoken}/revoke/": (302, 403, 403, 403, 200, 403, 200, 302),
    "/admin/keys/apiclient/{apiclient}/active/": (302, 403, 403, 403, 200, 403, 200, 302),
    "/admin/keys/apiclient/{apiclient}/webhook-secret/": (302, 403, 403, 403, 200, 403, 200, 302),
    "/admin/keys/apiclient/{apiclient}/signing-secret/": (302, 403, 403, 403, 200, 403, 200, 302),
    "/admin/keys/apitoken/": (302, 403, 403, 403, 200, 200, 200, 302),
    "/admin/keys/apitoken/add/": (302, 403, 403, 403, 403, 403, 403, 302),
    "/admin/keys/apitoken/{apitoken}/change/": (302, 403, 403, 403, 200, 200, 200, 302),
    "/admin/keys/apitoken/{apitoken}/delete/": (302, 403, 403, 403, 403, 403, 403, 302),
    "/admin/keys/apitoken/{apitoken}/history/": (302, 403, 403, 403, 200, 200, 200, 302),
    "/admin/keys/apitoken/{apitoken}/history/{apitoken_history}/": (302, 403, 403, 403, 200, 200, 200, 302),
    "/admin/prompts/prompt/": (302, 403, 200, 200, 403, 200, 200, 302),
    "/admin/prompts/prompt/add/": (302, 403, 200, 403, 403, 403, 200, 302),
    "/admin/prompts/prompt/{prompt}/change/": (302, 403, 200, 200, 403, 200, 200, 302),
    "/admin/prompts/prompt/{prompt}/compare/": (302, 403, 200, 200, 403, 200, 200, 302),
    "/admin/prompts/prompt/{prompt}/delete/": (302, 403, 403, 403, 403, 403, 403, 302),
    "/admin/prompts/prompt/{prompt}/history/": (302, 403, 200, 200, 403, 200, 200, 302),
    "/admin/prompts/prompt/{prompt}/history/{prompt_history}/": (302, 403, 200, 200, 403, 200, 200, 302),
    "/admin/prompts/promptversion/": (302, 403, 200, 200, 403, 200, 200, 302),
    "/admin/prompts/promptversion/add/": (302, 403, 200, 403, 403, 403, 200, 302),
    "/admin/prompts/promptversion/{promptversion}/change/": (302, 403, 200, 200, 403, 200, 200, 302),
    "/admin/prompts/promptversion/{promptversion}/delete/": (302, 403, 403, 403, 403, 403, 403, 302),
    "/admin/prompts/promptversion/{promptversion}/history/": (302, 403, 200, 200, 403, 200, 200, 302),
    "/admin/prompts/promptversion/{promptversion}/history/{promptversion_history}/": (
        302,
        403,
        200,
        200,
        403,
        200,
        200,
        302,
    ),
    "/admin/prompts/promptversion/{draft}/do/submit/": (302, 403, 200, 403, 403, 403, 200, 302),
    "/admin/prompts/promptversion/{in_review}/do/approve/": (302, 403, 403, 200, 403, 403, 200, 302),
    "/admin/prompts/promptversion/{in_review}/do/reject/": (302, 403, 403, 200, 403, 403, 200, 302),
    "/admin/prompts/promptversion/{in_review}/do/evaluate/": (302, 403, 200, 200, 403, 403, 200, 302),
    "/admin/prompts/promptversion/{promptversion}/do/release/": (302, 403, 403, 200, 403, 403, 200, 302),
    "/admin/prompts/promptversion/{promptversion}/do/retire/": (302, 403, 403, 200, 403, 403, 200, 302),
    "/admin/prompts/promptversion/{promptversion}/do/new_draft/": (302, 403, 200, 403, 403, 403, 200, 302),
    # The playground: a paid call on the development key, for authors (docs/admin.md, The playground).
    "/admin/playground/{draft}/": (302, 403, 200, 403, 403, 403, 200, 302),
    "/admin/prompts/release/": (302, 403, 200, 200, 403, 200, 200, 302),
    "/admin/prompts/release/add/": (302, 403, 403, 403, 403, 403, 403, 302),
    "/admin/prompts/release/{release}/change/": (302, 403, 200, 200, 403, 200, 200, 302),
    "/admin/prompts/release/{release}/delete/": (302, 403, 403, 403, 403, 403, 403, 302),
    "/admin/prompts/release/{release}/history/": (302, 403, 200, 200, 403, 200, 200, 302),
    "/admin/prompts/release/{release}/history/{release_history}/": (302, 403, 200, 200, 403, 200, 200, 302),
    "/admin/prompts/release/{release}/rollback/": (302, 403, 403, 200, 403, 403, 200, 302),
    "/admin/gateway/run/": (302, 403, 403, 200, 403, 200, 200, 302),
    "/admin/gateway/run/add/": (302, 403, 403, 403, 403, 403, 403, 302),
    "/admin/gateway/run/{run}/change/": (302, 403, 403, 200, 403, 200, 200, 302),
    "/admin/gateway/run/{run}/delete/": (302, 403, 403, 403, 403, 403, 403, 302),
    "/admin/gateway/run/{run}/history/": (302, 403, 403, 200, 403, 200, 200, 302),
    "/admin/gateway/job/": (302, 403, 403, 200, 403, 200, 200, 302),
    "/admin/gateway/job/add/": (302, 403, 403, 403, 403, 403, 403, 302),
    "/admin/gateway/job/{job}/change/": (302, 403, 403, 200, 403, 200, 200, 302),
    "/admin/gateway/job/{job}/delete/": (302, 403, 403, 403, 403, 403, 403, 302),
    "/admin/gateway/job/{job}/history/": (302, 403, 403, 200, 403, 200, 200, 302),
    "/admin/gateway/batch/": (302, 403, 403, 200, 403, 200, 200, 302),
    "/admin/gateway/batch/add/": (302, 403, 403, 403, 403, 403, 403, 302),
    "/admin/gateway/batch/{batch}/change/": (302, 403, 403, 200, 403, 200, 200, 302),
    "/admin/gateway/batch/{batch}/delete/": (302, 403, 403, 403, 403, 403, 403, 302),
    "/admin/gateway/batch/{batch}/history/": (302, 403, 403, 200, 403, 200, 200, 302),
    "/admin/gateway/discoveredprompt/": (302, 403, 200, 200, 403, 200, 200, 302),
    "/admin/gateway/discoveredprompt/add/": (302, 403, 403, 403, 403, 403, 403, 302),
    "/admin/gateway/discoveredprompt/{discoveredprompt}/change/": (302, 403, 200, 200, 403, 200, 200, 302),
    "/admin/gateway/discoveredprompt/{discoveredprompt}/delete/": (302, 403, 403, 403, 403, 403, 403, 302),
    "/admin/gateway/discoveredprompt/{discoveredprompt}/history/": (302, 403, 200, 200, 403, 200, 200, 302),
    "/admin/gateway/discoveredprompt/{discoveredprompt}/register/": (302, 403, 200, 403, 403, 403, 200, 302),
    "/admin/evaluations/evaluationcase/": (302, 403, 200, 200, 403, 200, 200, 302),
    "/admin/evaluations/evaluationcase/add/": (302, 403, 200, 403, 403, 403, 200, 302),
    "/admin/evaluations/evaluationcase/{evaluationcase}/change/": (302, 403, 200, 200, 403, 200, 200, 302),
    "/admin/evaluations/evaluationcase/{evaluationcase}/delete/": (302, 403, 403, 403, 403, 403, 403, 302),
    "/admin/evaluations/evaluationcase/{evaluationcase}/history/": (302, 403, 200, 200, 403, 200, 200, 302),
    "/admin/evaluations/evaluationcase/{evaluationcase}/history/{evaluationcase_history}/": (
        302,
        403,
        200,
        200,
        403,
        200,
        200,
        302,
    ),
    "/admin/evaluations/evaluationrun/": (302, 403, 200, 200, 403, 200, 200, 302),
    "/admin/evaluations/evaluationrun/add/": (302, 403, 403, 403, 403, 403, 403, 302),
    "/admin/evaluations/evaluationrun/{evaluationrun}/change/": (302, 403, 200, 200, 403, 200, 200, 302),
    "/admin/evaluations/evaluationrun/{evaluationrun}/delete/": (302, 403, 403, 403, 403, 403, 403, 302),
    "/admin/evaluations/evaluationrun/{evaluationrun}/history/": (302, 403, 200, 200, 403, 200, 200, 302),
}

# (method, path, body) → the status per API principal. The body is the kind the walk sends: a run's
# variables, a Messages body naming the prompt (`prompt-bound`) or a model (`free-form`), a batch of one.
API_ENDPOINTS: dict[tuple[str, str, str], tuple[int, ...]] = {
    ("GET", "/api/v1/prompts", ""): (401, 200, 200, 200, 401, 401),
    ("GET", "/api/v1/prompts/support-summary", ""): (401, 200, 403, 403, 401, 401),
    ("POST", "/api/v1/prompts/support-summary/run", "run"): (401, 200, 403, 403, 401, 401),
    ("POST", "/api/v1/prompts/support-summary/jobs", "job"): (401, 202, 403, 403, 401, 401),
    ("POST", "/api/v1/prompts/support-summary/batches", "batch"): (401, 202, 403, 403, 401, 401),
    ("GET", "/api/v1/runs/{run_id}", ""): (401, 200, 404, 404, 401, 401),
    ("GET", "/api/v1/jobs/{job_id}", ""): (401, 200, 404, 404, 401, 401),
    ("GET", "/api/v1/batches/{batch_id}", ""): (401, 200, 404, 404, 401, 401),
    ("GET", "/api/v1/batches/{batch_id}/results", ""): (401, 200, 404, 404, 401, 401),
    ("POST", "/api/v1/batches/{batch_id}/cancel", ""): (401, 200, 404, 404, 401, 401),
    ("POST", "/api/v1/cost/estimate", "estimate"): (401, 200, 200, 200, 401, 401),
    ("GET", "/api/v1/usage", ""): (401, 200, 200, 200, 401, 401),
    ("GET", "/api/schema/", ""): (401, 200, 200, 200, 401, 401),
    ("GET", "/api/docs/", ""): (302, 302, 302, 302, 302, 302),
    ("POST", "/anthropic/v1/messages", "prompt-bound"): (401, 200, 403, 403, 401, 401),
    ("POST", "/anthropic/v1/messages", "free-form"): (401, 403, 200, 403, 401, 401),
    ("POST", "/anthropic/v1/messages/count_tokens", "prompt-bound count"): (401, 200, 403, 403, 401, 401),
    ("POST", "/anthropic/v1/messages/count_tokens", "free-form count"): (401, 403, 200, 403, 401, 401),
    ("POST", "/anthropic/v1/messages/batches", "prompt-bound batch"): (401, 200, 403, 403, 401, 401),
    ("POST", "/anthropic/v1/messages/batches", "free-form batch"): (401, 400, 400, 400, 401, 401),
    ("GET", "/anthropic/v1/messages/batches", ""): (401, 200, 200, 200, 401, 401),
    ("GET", "/anthropic/v1/messages/batches/{message_batch_id}", ""): (401, 200, 404, 404, 401, 401),
    ("GET", "/anthropic/v1/messages/batches/{message_batch_id}/results", ""): (401, 400, 404, 404, 401, 401),
    ("POST", "/anthropic/v1/messages/batches/{message_batch_id}/cancel", ""): (401, 200, 404, 404, 401, 401),
    ("GET", "/anthropic/v1/models", ""): (401, 200, 200, 200, 401, 401),
    ("GET", "/anthropic/v1/models/prompt:support-summary", ""): (401, 200, 404, 404, 401, 401),
    ("GET", "/anthropic/v1/models/claude-haiku-4-5", ""): (401, 404, 200, 404, 401, 401),
}

# Pages the walk leaves out: the admin's login, logout and helpers every signed-in person uses, single
# sign-on's start and callback (sign-in pages for anyone, 404 unless configured: tests/identity/test_sso.py),
# the operations endpoints (docs/operations.md), and the catch-alls that answer 404 under /api/ and /anthropic/.
NOT_WALKED: frozenset[str] = frozenset({
    "admin:login", "admin:logout", "admin:password_change_done", "admin:view_on_site", "admin:jsi18n",
    "admin:autocomplete", "oidc_authentication_init", "oidc_authentication_callback",
    "healthz", "readyz", "metrics", "api-not-found", "anthropic-not-found",
})  # fmt: skip

_CELLS = {200: "yes", 302: "login", 401: "401", 403: "—"}


def _cell(status: int, principal: str = "") -> str:
    if principal == UNENROLLED and status == 302:
        return "enrol"  # the gate's redirect to enrolment, not to the login page
    return _CELLS.get(status, str(status))


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def markdown() -> str:
    """docs/permissions.md: the two tables above, as Markdown."""
    lines = [
        "# Who can do what",
        "",
        "<!-- Generated from core/permission_matrix.py by `manage.py permission_matrix --markdown`: do not edit. -->",
        "",
        "What each principal gets from each admin page and each API endpoint. The table is",
        "`core/permission_matrix.py`; a test walks every principal against every entry with Django's test",
        "client and fails on any other answer, or on a page or an endpoint that has no entry, and another",
        "fails when this page is not the table as generated. The roles and their permissions are",
        "[the admin, by role](admin.md); API clients and their tokens, [the REST API](api.md) and",
        "[the Anthropic-compatible endpoint](anthropic.md).",
        "",
        "## The admin",
        "",
        "A GET of each page: **yes** the page, **login** a redirect to the login page, **—** refused (403);",
        "another number is that status. Opening an action's page (approve, release, rotate, issue a",
        "token, …) shows its form; the service checks the permission again when the form is sent.",
        "Placeholders in braces are an object: `{draft}` a draft version, `{in_review}` a version in",
        "review, `{promptversion}` a version released to production, `{…_history}` a history row.",
        "",
        *[f"- **{name}**: {text}." for name, text in ADMIN_PRINCIPAL_HELP.items()],
        "",
        _row(["page", *ADMIN_PRINCIPALS]),
        _row(["---"] * (len(ADMIN_PRINCIPALS) + 1)),
    ]
    lines += [_row([f"`{page}`", *map(_cell, statuses, ADMIN_PRINCIPALS)]) for page, statuses in ADMIN_PAGES.items()]
    lines += [
        "",
        "## The API",
        "",
        "Each client is an API client of the environment the prompt `support-summary` is released to,",
        "with a valid token:",
        "",
        *[f"- **{name}**: {text}" for name, text in API_PRINCIPAL_HELP.items()],
        "",
        "A cell is the status answered (**yes** is 200). Runs, jobs and batches named by id are the",
        "prompt-bound client's own; another client is told they do not exist (404). A message batch's",
        "results answer 400 while the batch is in progress, as Anthropic's do.",
        "",
        _row(["endpoint", "body", *API_PRINCIPALS]),
        _row(["---"] * (len(API_PRINCIPALS) + 2)),
    ]
    lines += [
        _row([f"`{method} {path}`", body or "—", *map(_cell, statuses)])
        for (method, path, body), statuses in API_ENDPOINTS.items()
    ]
    lines += [
        "",
        "Not walked: the admin's login and logout pages and its helpers, single sign-on's",
        "`/oidc/authenticate/` and `/oidc/callback/` (sign-in pages for anyone, 404 unless configured:",
        "[single sign-on](admin.md#single-sign-on)), `/healthz`, `/readyz` and `/metrics`",
        "([operations](operations.md)), and the catch-alls answering 404 under `/api/` and `/anthropic/`.",
        "",
    ]
    return "\n".join(lines)
