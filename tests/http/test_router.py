"""trusswork.http router: literal and parameter routes, 404 vs 405, encoded slashes, conflicts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trusswork.core.errors import Conflict, InvalidInput, NotFound
from trusswork.http._router import MethodNotAllowed, Router


def make() -> Router[str]:
    router: Router[str] = Router()
    router.add("GET", "/health", "health")
    router.add(["GET", "HEAD"], "/users/{user_id:int}", "user")
    router.add("GET", "/users/me", "me")
    router.add("POST", "/users", "create")
    router.add("GET", "/users/{user_id:int}/posts/{slug}", "post")
    router.add("GET", "/files/{rest:path}", "file")
    return router


def test_literal_paths_match_without_parameters() -> None:
    match = make().match("GET", "/health")
    assert (match.handler, match.params, match.pattern) == ("health", {}, "/health")


def test_int_parameters_are_converted() -> None:
    match = make().match("GET", "/users/42/posts/hello-world")
    assert match.handler == "post"
    assert match.params == {"user_id": 42, "slug": "hello-world"}


def test_literal_segments_win_over_parameters_whatever_the_order() -> None:
    router = make()
    assert router.match("GET", "/users/me").handler == "me"
    assert router.match("GET", "/users/7").handler == "user"


def test_int_parameters_reject_non_digits() -> None:
    with pytest.raises(NotFound):
        make().match("GET", "/users/abc")
    with pytest.raises(NotFound):
        make().match("GET", "/users/-1")
    with pytest.raises(NotFound):
        make().match("GET", "/users/\u0663")  # an Arabic-Indic digit is not an ASCII digit


def test_path_parameters_take_the_rest() -> None:
    match = make().match("GET", "/files/css/site.css")
    assert match.params == {"rest": "css/site.css"}
    with pytest.raises(NotFound):
        make().match("GET", "/files/")


def test_unknown_paths_are_404_and_wrong_methods_405_with_the_allowed_ones() -> None:
    router = make()
    with pytest.raises(NotFound):
        router.match("GET", "/nope")
    with pytest.raises(MethodNotAllowed) as caught:
        router.match("DELETE", "/users/3")
    assert caught.value.allowed == ("GET", "HEAD")
    assert caught.value.http_status == 405
    with pytest.raises(MethodNotAllowed) as caught:
        router.match("GET", "/users")
    assert caught.value.allowed == ("POST",)


def test_percent_encoded_segments_are_decoded_after_splitting() -> None:
    router = make()
    assert router.match("GET", "/users/42/posts/caf%C3%A9").params["slug"] == "café"
    # An encoded slash stays inside its segment: it never reaches /users/{id}/posts/{slug}.
    match = router.match("GET", "/users/42/posts/a%2Fb")
    assert match.params["slug"] == "a/b"
    with pytest.raises(NotFound):
        router.match("GET", "/users%2F42")
    assert router.match("GET", "/heal%74h").handler == "health"


def test_invalid_utf8_after_decoding_is_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="UTF-8"):
        make().match("GET", "/users/1/posts/%FF")


def test_duplicate_routes_conflict() -> None:
    router = make()
    with pytest.raises(Conflict, match="GET /health"):
        router.add("GET", "/health", "again")
    with pytest.raises(Conflict, match="already the parameter"):
        router.add("GET", "/users/{name}/x", "other")


@pytest.mark.parametrize(
    "pattern",
    ["health", "/users/{id", "/users/x{id}", "/a/{rest:path}/b", "/{a}/{a}", "/{x:float}"],
)
def test_malformed_patterns_are_rejected(pattern: str) -> None:
    with pytest.raises(InvalidInput):
        Router[str]().add("GET", pattern, "h")


def test_methods_must_be_tokens() -> None:
    with pytest.raises(InvalidInput):
        Router[str]().add("GE T", "/x", "h")


def test_decorators_register_handlers() -> None:
    router: Router[object] = Router()

    @router.get("/items/{item_id:int}")
    def item() -> None: ...

    @router.post("/items")
    def create() -> None: ...

    assert router.match("HEAD", "/items/1").handler is item
    assert router.match("POST", "/items").handler is create


segment = st.text(alphabet="abcdefghij0123456789-_", min_size=1, max_size=8)


@given(st.lists(segment, min_size=1, max_size=5))
def test_a_router_matches_every_literal_path_it_holds(parts: list[str]) -> None:
    router: Router[str] = Router()
    path = "/" + "/".join(parts)
    router.add("GET", path, "h")
    router.add("GET", "/" + "/".join([f"{{p{i}}}" for i in range(len(parts))]), "params")
    assert router.match("GET", path).handler == "h"
    other = "/" + "/".join(p + "x" for p in parts)
    match = router.match("GET", other)
    assert match.handler == "params"
    assert list(match.params.values()) == [p + "x" for p in parts]
