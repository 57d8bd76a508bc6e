"""Lia's load benchmark: `bash bin/bench` (or `python -m bench --help`).

Processes, all on 127.0.0.1 with ports chosen by the kernel:

* the provider fake (`bench.fake`, llm.testing's FakeLLMServer) with realistic pacing;
* Lia under a production ASGI server (`bench.server`: daphne, uvicorn or granian);
* the load client (`bench.client`), a separate asyncio process that opens N SSE streams at once.

`bench.runner` drives them and measures; `bench.report` prints the table. Nothing in Lia imports
this package.
"""
