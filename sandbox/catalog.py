"""The models the sandbox knows: aliases, the dated id the API answers with, limits and cache minimums.

Minimum cacheable prompt lengths follow Anthropic's documentation; the sandbox lets tests override them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelInfo:
    """What the sandbox needs to know about one model."""

    model_id: str  # the dated id the API reports in responses
    max_output_tokens: int
    min_cache_tokens: int


_OPUS_45 = ModelInfo("claude-opus-4-5-20251101", 64_000, 4_096)
_OPUS_46 = ModelInfo("claude-opus-4-6", 128_000, 4_096)
_OPUS_41 = ModelInfo("claude-opus-4-1-20250805", 32_000, 1_024)
_OPUS_4 = ModelInfo("claude-opus-4-20250514", 32_000, 1_024)
_OPUS_3 = ModelInfo("claude-3-opus-20240229", 4_096, 1_024)
_SONNET_46 = ModelInfo("claude-sonnet-4-6", 64_000, 1_024)
_SONNET_45 = ModelInfo("claude-sonnet-4-5-20250929", 64_000, 1_024)
_SONNET_4 = ModelInfo("claude-sonnet-4-20250514", 64_000, 1_024)
_SONNET_37 = ModelInfo("claude-3-7-sonnet-20250219", 64_000, 1_024)
_SONNET_35 = ModelInfo("claude-3-5-sonnet-20241022", 8_192, 1_024)
_HAIKU_45 = ModelInfo("claude-haiku-4-5-20251001", 64_000, 4_096)
_HAIKU_35 = ModelInfo("claude-3-5-haiku-20241022", 8_192, 2_048)
_HAIKU_3 = ModelInfo("claude-3-haiku-20240307", 4_096, 2_048)

MODELS: dict[str, ModelInfo] = {
    "claude-opus-4-5-20251101": _OPUS_45,
    "claude-opus-4-5": _OPUS_45,
    "claude-opus-4-6": _OPUS_46,
    "claude-opus-4-1-20250805": _OPUS_41,
    "claude-opus-4-1": _OPUS_41,
    "claude-opus-4-20250514": _OPUS_4,
    "claude-opus-4-0": _OPUS_4,
    "claude-3-opus-20240229": _OPUS_3,
    "claude-sonnet-4-6": _SONNET_46,
    "claude-sonnet-4-5-20250929": _SONNET_45,
    "claude-sonnet-4-5": _SONNET_45,
    "claude-sonnet-4-20250514": _SONNET_4,
    "claude-sonnet-4-0": _SONNET_4,
    "claude-3-7-sonnet-20250219": _SONNET_37,
    "claude-3-7-sonnet-latest": _SONNET_37,
    "claude-3-5-sonnet-20241022": _SONNET_35,
    "claude-haiku-4-5-20251001": _HAIKU_45,
    "claude-haiku-4-5": _HAIKU_45,
    "claude-3-5-haiku-20241022": _HAIKU_35,
    "claude-3-5-haiku-latest": _HAIKU_35,
    "claude-3-haiku-20240307": _HAIKU_3,
}

API_VERSIONS = ("2023-06-01", "2026-10-21")
# Under this version and later the sampling parameters are gone (ANTHROPIC_API.md).
SAMPLING_REMOVED_IN = "2026-10-21"

KNOWN_BETAS = frozenset(
    {
        "message-batches-2024-09-24",
        "prompt-caching-2024-07-31",
        "extended-cache-ttl-2025-04-11",
        "token-counting-2024-11-01",
        "token-efficient-tools-2025-02-19",
        "output-128k-2025-02-19",
        "interleaved-thinking-2025-05-14",
        "context-1m-2025-08-07",
        "context-management-2025-06-27",
        "files-api-2025-04-14",
        "fine-grained-tool-streaming-2025-05-14",
    }
)
