"""``WS /v1/tts/ws``: text streamed in (an LLM's tokens), speech streamed out, sentence by sentence.

The protocol (also answered as text by ``GET /v1/tts/ws``, which /docs lists):
"""

from fastapi import APIRouter, WebSocket
from fastapi.responses import PlainTextResponse

from ..context import get_services
from ..realtime_protocol import PROTOCOL
from ..realtime_session import RealtimeSession

router = APIRouter(tags=["realtime"])
__doc__ = (__doc__ or "") + PROTOCOL


@router.websocket("/v1/tts/ws")
async def tts_ws(websocket: WebSocket) -> None:
    await RealtimeSession(get_services(), websocket).run()


@router.get("/v1/tts/ws", response_class=PlainTextResponse, summary="Realtime WebSocket protocol",
            description=PROTOCOL)
async def tts_ws_protocol() -> str:
    """Connect with a WebSocket client (ws://host/v1/tts/ws); this plain GET answers the protocol."""
    return PROTOCOL
