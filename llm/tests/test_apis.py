import pytest

CONTRACT_MODELS = {
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
}


def test_models_lists_the_contracts_providers_first_in_order(client):
    response = client.get("/api/v1/chat/models")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert list(body)[:2] == ["gemini", "openai"]
    assert {key: body[key] for key in ("gemini", "openai")} == CONTRACT_MODELS
    assert body["offline"] == [{"id": "lia-offline", "name": "Lia Offline (no model)", "context_window": 32000}]


def test_models_is_public_and_ignores_a_bad_token(client):
    response = client.get("/api/v1/chat/models", HTTP_AUTHORIZATION="Bearer not-a-token")
    assert response.status_code == 200


def test_models_includes_configured_compatible_providers(client, settings):
    settings.LLM_PROVIDERS = {
        **settings.LLM_PROVIDERS,
        "ollama": {
            "BACKEND": "llm.providers.openai.OpenAICompatibleProvider",
            "BASE_URL": "http://127.0.0.1:11434/v1",
            "MODELS": ["llama3.2=Llama 3.2", "qwen2.5:7b", {"id": "phi4", "name": "Phi-4", "context_window": 16384}],
        },
    }

    body = client.get("/api/v1/chat/models").json()

    assert list(body) == ["gemini", "openai", "offline", "ollama"]
    assert body["ollama"] == [
        {"id": "llama3.2", "name": "Llama 3.2"},
        {"id": "qwen2.5:7b", "name": "qwen2.5:7b"},
        {"id": "phi4", "name": "Phi-4", "context_window": 16384},
    ]


@pytest.mark.parametrize("path", ["/api/v1/chat/models/", "/api/v1/chat/model"])
def test_near_miss_paths_are_not_found_not_redirected(client, path):
    response = client.get(path)
    assert response.status_code == 404
