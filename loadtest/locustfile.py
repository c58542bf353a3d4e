"""Locust load profile for VoxServe.

Three kinds of users, mixed 5 : 1 : 3 by weight:

* ``ShortSyncUser``  — POST /v1/tts with one short sentence (the interactive case);
* ``LongSyncUser``   — POST /v1/tts with a 5–8 sentence paragraph (batch/article narration);
* ``StreamingUser``  — POST /v1/tts/stream, reading the chunked WAV as it arrives.

Locust hands out users by weight in a fixed order (Short, Stream, Short, Long, ...), so a run
with fewer than 4 users would have no LongSyncUser at all; with 3 or more users the long class
is pinned to its weighted share, but at least one (see ``_every_class_present``).

Every request sends ``cache: false`` so the service really synthesizes instead of answering
from storage (content-addressed keys would otherwise make repeats free).

Entries in the statistics:

    /v1/tts [short]           sync, short sentence        (full response)
    /v1/tts [long]            sync, paragraph             (full response)
    /v1/tts/stream            streaming: time to response headers
    /v1/tts/stream [ttfb]     streaming: time to the first audio byte after the 44-byte WAV header
    /v1/tts/stream [total]    streaming: time until the last byte

Run it with ``python loadtest/run.py`` (checks /readyz, writes CSV + HTML reports) or directly:
``locust -f loadtest/locustfile.py --host http://127.0.0.1:8000``.
"""

from __future__ import annotations

import random
import time

from locust import HttpUser, between, events, task

WAV_HEADER_BYTES = 44
REQUEST_TIMEOUT_S = 180  # a paragraph on a busy CPU box can take a while

SHORT_SENTENCES = [
    "Hello, and welcome to VoxServe.",
    "Your order has shipped and should arrive on Tuesday.",
    "Please hold while I connect you to an agent.",
    "The meeting starts in five minutes.",
    "Turn left at the next intersection.",
    "It is currently twelve degrees and partly cloudy.",
    "Your verification code is four, seven, two, nine.",
    "Thanks for calling, have a great day!",
    "The next train to the airport leaves at half past three.",
    "Battery low, please connect the charger.",
    "I didn't quite catch that, could you repeat it?",
    "Your appointment has been confirmed.",
]

PARAGRAPH_SENTENCES = [
    "The old lighthouse stood at the edge of the cliff, its white paint peeling in long strips.",
    "Every evening the keeper climbed the spiral staircase to light the great lamp.",
    "Ships far out at sea watched for its slow, steady sweep across the dark water.",
    "In the village below, fishermen mended their nets and talked about the weather.",
    "Some said a storm was coming, larger than any they had seen in years.",
    "The children ran along the harbour wall, chasing gulls and laughing at the spray.",
    "By midnight the wind had risen, and rain hammered against the shutters.",
    "Still the light turned, patient and bright, as it had for more than a hundred years.",
    "In the morning the sea was calm again, and the boats went out as if nothing had happened.",
    "Researchers measured the effect across three independent data sets collected over two years.",
    "The results were consistent, although the smallest sample showed a wider margin of error.",
    "Further work will examine whether the pattern holds in colder climates.",
    "Preheat the oven to two hundred degrees and line a baking tray with parchment.",
    "Whisk the eggs and sugar together until the mixture is pale and thick.",
    "Fold in the flour gently, taking care not to knock out the air.",
]


def short_text() -> str:
    return random.choice(SHORT_SENTENCES)


def paragraph_text() -> str:
    return " ".join(random.sample(PARAGRAPH_SENTENCES, random.randint(5, 8)))


def tts_body(text: str, **extra) -> dict:
    return {"text": text, "format": "wav", "response": "url", "cache": False, **extra}


class VoxServeUser(HttpUser):
    abstract = True
    host = "http://127.0.0.1:8000"
    wait_time = between(0.5, 2)

    def sync_tts(self, text: str, name: str) -> None:
        with self.client.post("/v1/tts", json=tts_body(text), name=name, catch_response=True,
                              timeout=REQUEST_TIMEOUT_S) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {response.text[:200]}")
                return
            try:
                payload = response.json()
            except ValueError:
                response.failure("response is not JSON")
                return
            if not payload.get("audio_url") or not payload.get("duration_s"):
                response.failure(f"no audio in response: {str(payload)[:200]}")
            elif payload.get("cached"):
                response.failure("served from cache although cache=false")
            else:
                response.success()


class ShortSyncUser(VoxServeUser):
    weight = 5

    @task
    def short_sentence(self) -> None:
        self.sync_tts(short_text(), "/v1/tts [short]")


class LongSyncUser(VoxServeUser):
    weight = 1

    @task
    def paragraph(self) -> None:
        self.sync_tts(paragraph_text(), "/v1/tts [long]")


class StreamingUser(VoxServeUser):
    weight = 3

    @task
    def stream(self) -> None:
        text = short_text() if random.random() < 0.5 else paragraph_text()
        started = time.perf_counter()
        # The POST entry itself ("/v1/tts/stream") is reported by locust at response headers.
        response = self.client.post("/v1/tts/stream", json=tts_body(text), name="/v1/tts/stream",
                                    stream=True, timeout=REQUEST_TIMEOUT_S)
        if not response.ok:
            response.close()
            return  # already counted as a failure under "/v1/tts/stream"

        received = 0
        ttfb_ms: float | None = None
        ttfb_bytes = 0
        header = b""
        error: Exception | None = None
        try:
            for chunk in response.iter_content(chunk_size=None):
                if not chunk:
                    continue
                if len(header) < WAV_HEADER_BYTES:
                    header += chunk[: WAV_HEADER_BYTES - len(header)]
                received += len(chunk)
                if ttfb_ms is None and received > WAV_HEADER_BYTES:
                    ttfb_ms = (time.perf_counter() - started) * 1000
                    ttfb_bytes = received
            if not header.startswith(b"RIFF"):
                error = ValueError(f"stream does not start with a WAV header: {header[:12]!r}")
            elif ttfb_ms is None:
                error = ValueError(f"stream ended after {received} bytes without audio")
        except Exception as exc:  # noqa: BLE001 - any transport error fails the stream entries
            error = exc
        finally:
            response.close()
        total_ms = (time.perf_counter() - started) * 1000

        fire = self.environment.events.request.fire
        fire(request_type="STREAM", name="/v1/tts/stream [ttfb]",
             response_time=ttfb_ms if ttfb_ms is not None else total_ms,
             response_length=ttfb_bytes,
             exception=error if ttfb_ms is None else None, context={})
        fire(request_type="STREAM", name="/v1/tts/stream [total]", response_time=total_ms,
             response_length=received, exception=error, context={})


@events.init.add_listener
def _every_class_present(environment, **_kwargs) -> None:
    """Pin LongSyncUser to its weighted share of ``--users``, at least 1, when there are
    enough users for every class; the other two share the rest 5 : 3."""
    users = getattr(getattr(environment, "parsed_options", None), "num_users", None)
    classes = (ShortSyncUser, LongSyncUser, StreamingUser)
    if not users or users < len(classes):
        return
    share = users * LongSyncUser.weight / sum(c.weight for c in classes)
    LongSyncUser.fixed_count = max(1, round(share))


@events.test_stop.add_listener
def _let_csv_catch_up(environment, **_kwargs) -> None:
    """Requests still in flight at --run-time finish during --stop-timeout, but Locust's CSV
    writer snapshots the stats only every CSV_STATS_INTERVAL_SEC and is stopped right after
    the users: wait one more tick so report_stats.csv matches the final console summary."""
    import gevent
    from locust import stats

    if getattr(getattr(environment, "parsed_options", None), "csv_prefix", None):
        gevent.sleep(stats.CSV_STATS_INTERVAL_SEC + 0.5)
