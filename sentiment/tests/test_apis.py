def test_methods_is_a_public_bare_array(client):
    response = client.get("/api/v1/chat/methods", HTTP_AUTHORIZATION="Bearer not-a-token")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    assert response.json() == ["nlp_api", "llm_separate", "structured", "local"]


def test_methods_never_redirects(client):
    assert client.get("/api/v1/chat/methods/").status_code not in (301, 302, 307, 308)
