"""Web search through tavily-python, its errors mapped to SearchFailed with a short, key-free reason."""

from __future__ import annotations

from typing import Any

from imagegen.grounding import SearchAnswer, SearchFailed, SearchHit

# What each refusal means (Tavily's help centre); the SDK raises one ForbiddenError for 403, 432 and 433 alike.
_STATUS_REASONS = {
    400: "Tavily rejected the query (400)",
    401: "Tavily rejected the API key (401)",
    403: "Tavily refused the request (403)",
    429: "Tavily rate limit reached (429)",
    432: "Tavily plan usage limit exceeded (432)",
    433: "Tavily pay-as-you-go limit exceeded (433)",
}


class TavilySearch:
    """One search per call. The key is checked by the caller's wiring: without one, tavily-python would not fail
    but quietly switch to its keyless mode, which we never want in a deployment."""

    def __init__(self, api_key: str, base_url: str, *, timeout_seconds: float, max_results: int = 3) -> None:
        if not api_key:
            raise ValueError("TavilySearch needs an API key")
        self._api_key = api_key
        self._base_url = base_url.rstrip("/")
        self._timeout = timeout_seconds
        self._max_results = max_results

    def __repr__(self) -> str:  # never show the key
        return f"TavilySearch(base_url={self._base_url!r})"

    def search(self, query: str) -> SearchAnswer:
        # Imported here: tavily (with requests and its async client) costs ~250 ms of cold start, and only jobs
        # that ask for grounding need it.
        import requests
        from tavily import TavilyClient
        from tavily.errors import (
            BadRequestError,
            ForbiddenError,
            InvalidAPIKeyError,
            TimeoutError,
            UsageLimitExceededError,
        )

        statuses: list[int] = []
        session = requests.Session()
        session.trust_env = False  # no proxy or ~/.netrc from the environment
        # The SDK folds 403/432/433 into one error; the response hook keeps the status that tells them apart.
        session.hooks["response"].append(lambda response, *args, **kwargs: statuses.append(response.status_code))
        client = TavilyClient(api_key=self._api_key, api_base_url=self._base_url, session=session)
        try:
            data: Any = client.search(
                query,
                search_depth="basic",
                max_results=self._max_results,
                include_answer="basic",
                timeout=self._timeout,
            )
        except TimeoutError:
            raise SearchFailed(f"Tavily did not answer within {self._timeout:g} s") from None
        except (InvalidAPIKeyError, ForbiddenError, UsageLimitExceededError, BadRequestError):
            status = statuses[-1] if statuses else None
            raise SearchFailed(_STATUS_REASONS.get(status or 0, "Tavily refused the request"), status=status) from None
        except requests.HTTPError as error:
            status = error.response.status_code if error.response is not None else None
            raise SearchFailed(f"Tavily answered {status}", status=status) from None
        except requests.JSONDecodeError:
            raise SearchFailed("Tavily answered with a body that is not JSON") from None
        except requests.Timeout:
            raise SearchFailed(f"Tavily did not answer within {self._timeout:g} s") from None
        except requests.RequestException as error:
            raise SearchFailed(f"could not reach Tavily ({type(error).__name__})") from None
        finally:
            session.close()
        return _answer(data)


def _answer(data: Any) -> SearchAnswer:
    if not isinstance(data, dict):
        raise SearchFailed("Tavily answered with something that is not a search result")
    results = []
    for item in data.get("results") or []:
        if isinstance(item, dict) and isinstance(item.get("url"), str):
            results.append(
                SearchHit(title=str(item.get("title") or ""), url=item["url"], content=str(item.get("content") or ""))
            )
    answer = data.get("answer")
    return SearchAnswer(answer=answer if isinstance(answer, str) else None, results=results)
