"""The model catalogue of GET /api/v1/chat/models (CONTRACT §6.6).

gemini and openai list the contract's models, in its order, with gpt-4.1-mini appended (the web
client offers it). Every other configured provider follows, with the MODELS of its settings
entry: dicts, or strings "id" / "id=Display name".
"""

import copy
from typing import Any

from llm.registry import provider_configs

DEFAULT_MODELS: dict[str, list[dict[str, Any]]] = {
    "gemini": [
        {"id": "gemini-2.5-flash", "name": "Gemini 2.5 Flash", "context_window": 1000000},
        {"id": "gemini-2.5-flash-lite", "name": "Gemini 2.5 Flash Lite", "context_window": 1000000},
        {"id": "gemini-2.5-pro", "name": "Gemini 2.5 Pro", "context_window": 2000000},
    ],
    "openai": [
        {"id": "gpt-4o", "name": "GPT-4o", "context_window": 128000},
        {"id": "gpt-4o-mini", "name": "GPT-4o Mini", "context_window": 128000},
        {"id": "gpt-4.1", "name": "GPT 4.1", "context_window": 128000},
        {"id": "gpt-4.1-mini", "name": "GPT-4.1 Mini", "context_window": 128000},
    ],
    "offline": [
        {"id": "lia-offline", "name": "Lia Offline (no model)", "context_window": 32000},
    ],
}


def _model_entry(item: Any) -> dict[str, Any]:
    if isinstance(item, dict):
        return copy.deepcopy(item)
    model_id, _, display = str(item).partition("=")
    return {"id": model_id.strip(), "name": display.strip() or model_id.strip()}


def model_catalogue() -> dict[str, list[dict[str, Any]]]:
    catalogue: dict[str, list[dict[str, Any]]] = {}
    for name, config in provider_configs().items():
        models = config.get("MODELS")
        if models is None:
            models = DEFAULT_MODELS.get(name, [])
        catalogue[name] = [_model_entry(item) for item in models]
    return catalogue


def offered_models(provider: str) -> frozenset[str]:
    """The ids of `provider`'s catalogued models."""
    config = provider_configs().get(provider) or {}
    models = config.get("MODELS")
    if models is None:
        models = DEFAULT_MODELS.get(provider, [])
    return frozenset(_model_entry(item)["id"] for item in models)


def default_model(provider: str) -> str | None:
    """The first catalogued model of `provider` (what llm_check uses when given no model)."""
    models = model_catalogue().get(provider) or []
    return models[0]["id"] if models else None
