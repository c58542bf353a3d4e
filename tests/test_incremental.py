"""Sentences out of text fragments (the realtime WebSocket's input)."""

from tts_engine.text.incremental import SentenceBuffer


def test_sentence_buffer_waits_for_certain_ends():
    buffer = SentenceBuffer()
    said = []
    for fragment in ["Dr.", " Smith", " paid", " 3", ".", "5", " dollars", ".", " Then", " 你好", "。"]:
        said += buffer.feed(fragment, now=0.0)
    assert said == ["Dr. Smith paid 3.5 dollars.", "Then 你好。"]
    buffer.feed("Done.", now=0.0)
    assert buffer.due(now=0.05) == [] and buffer.due(now=0.2) == ["Done."]
    long = SentenceBuffer(max_chars=40).feed("words without any end, and then more words that keep coming")
    assert long and all(len(piece) <= 40 for piece in long)
