"""Housekeeping of the gateway's records."""

from __future__ import annotations

from django.utils import timezone

from gateway.discovery import discovered_texts_purge
from gateway.models import BatchItem, Job, Run


def request_bodies_purge() -> int:
    """Blank the redacted request and answer bodies of runs past TOLLGATE_BODY_RETENTION_DAYS (the run's
    metadata — tokens, cost, outcome — stays), the sealed results of jobs and batches past the same
    retention, the placeholder mappings of jobs that were never run in time, and the texts of discovered
    prompts not seen for as long (their counts stay). Returns how many runs were purged."""
    now = timezone.now()
    discovered_texts_purge(now)
    Job.objects.filter(result_expires_at__lte=now).exclude(result_ciphertext="").update(
        result_ciphertext="", result_kek_id=""
    )
    Job.objects.filter(mapping_expires_at__lte=now).exclude(mapping_ciphertext="").update(
        mapping_ciphertext="", mapping_kek_id=""
    )
    BatchItem.objects.filter(batch__result_expires_at__lte=now).exclude(result_ciphertext="").update(
        result_ciphertext="", result_kek_id=""
    )
    return Run.objects.filter(bodies_expire_at__lte=now, bodies_purged_at__isnull=True).update(
        request_redacted="", output_redacted="", bodies_purged_at=now
    )
