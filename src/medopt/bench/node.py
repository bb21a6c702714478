"""A placement node: one edge or cloud process of a hybrid deployment, serving ``POST /infer``.

Why one small program for every placement: the comparison "split vs cloud-only vs edge-only" must differ only in
where the layers run and what crosses the link, so every placement's edge and cloud sides use the same HTTP stack
(aiohttp), the same ONNX Runtime sessions and the same preprocessing (``serve.codec.decode_images``, as the KServe
server does). The KServe server's own overhead is measured separately (``benchmarks/serve.py``).

A node reads its ``NodePlan`` (JSON file) and, per request: takes the body as an encoded image (PNG/JPEG/DICOM) or as
a packed intermediate tensor (``serve.split.pack_sample``), runs its ONNX model if it has one, and either answers
with the class probabilities or forwards to the next node (through the link) as the original image, a JPEG
re-encoding, or the packed intermediate. All compute runs on one worker thread; ``slowdown`` > 1 emulates a slower
edge device by idling ``(slowdown - 1) x`` the measured compute time on that thread after each request (the device is
busy that long, so queueing behaves as on a slower CPU). ``stall_at_s``/``stall_ms`` inject one stall (fault tests).
"""

from __future__ import annotations

import asyncio
import io
import json
import socket
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field


class Forward(BaseModel):
    """Where a node sends its result and in which form."""

    model_config = ConfigDict(extra="forbid")
    url: str
    send: Literal["image", "jpeg", "intermediate"]
    jpeg_quality: int = Field(default=90, ge=1, le=100)
    timeout_s: float = Field(default=30.0, gt=0)


class NodePlan(BaseModel):
    """What one node does; see the module docstring."""

    model_config = ConfigDict(extra="forbid")
    name: str
    accepts: Literal["image", "intermediate"] = "image"
    model: str | None = Field(default=None, description="ONNX file this node runs (None: it only forwards)")
    store_root: str = Field(description="artifact store holding the described model")
    described_by: str = Field(description="store key of the whole model: its geometry and preprocessing")
    intermediate_shape: list[int] | None = None
    codec: Literal["none", "fp16", "int8"] = "int8"
    threads: int = Field(default=1, ge=1)
    slowdown: float = Field(default=1.0, ge=1.0)
    forward: Forward | None = None
    stall_at_s: float | None = None
    stall_ms: float = 0.0


class _Node:
    def __init__(self, plan: NodePlan) -> None:
        from medopt.serve.artifact import describe_model, onnx_runner
        from medopt.store import LocalStore

        self.plan = plan
        with tempfile.TemporaryDirectory(prefix="medopt-node-") as tmp:
            self.spec, self.info = describe_model(LocalStore(plan.store_root), plan.described_by, name=plan.name,
                                                  max_rows=1, workdir=Path(tmp))
        self.run_model = onnx_runner(Path(plan.model), plan.threads) if plan.model else None
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"node-{plan.name}")
        self.first: float | None = None
        self.stalled = plan.stall_at_s is None

    def compute(self, body: bytes) -> tuple[bytes, str]:
        """The node's work on one request, on its single worker thread: (payload, content type)."""
        start = time.perf_counter()
        self._maybe_stall(start)
        payload = self._work(body)
        if self.plan.slowdown > 1.0:
            time.sleep((time.perf_counter() - start) * (self.plan.slowdown - 1.0))
        return payload

    def _maybe_stall(self, now: float) -> None:
        if self.first is None:
            self.first = now
        if not self.stalled and now - self.first >= float(self.plan.stall_at_s or 0.0):
            self.stalled = True
            time.sleep(self.plan.stall_ms / 1000.0)

    def _work(self, body: bytes) -> tuple[bytes, str]:
        from medopt.serve.codec import decode_images
        from medopt.serve.split import decode_intermediate, encode_intermediate, pack_sample, unpack_sample

        fwd = self.plan.forward
        if fwd is not None and fwd.send == "image" and self.run_model is None:
            return body, "image/png"
        if fwd is not None and fwd.send == "jpeg":
            return _to_jpeg(body, fwd.jpeg_quality), "image/jpeg"
        if self.plan.accepts == "image":
            x = decode_images([body], self.spec)
        else:
            shape = tuple(self.plan.intermediate_shape or ())
            x = decode_intermediate(unpack_sample(body, shape, self.plan.codec))
        y = self.run_model(x) if self.run_model is not None else x
        if fwd is not None:
            return pack_sample(encode_intermediate(y, self.plan.codec)), "application/octet-stream"
        probs = _softmax(y[0])
        return json.dumps({"probabilities": probs.tolist(), "label": int(probs.argmax())}).encode(), \
            "application/json"


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max())
    return z / z.sum()


def _to_jpeg(body: bytes, quality: int) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    with Image.open(io.BytesIO(body)) as image:
        image.convert("L" if image.mode in ("L", "I;16", "I") else "RGB").save(out, format="JPEG", quality=quality)
    return out.getvalue()


def _app(node: _Node) -> Any:
    import aiohttp
    from aiohttp import web

    from medopt.errors import MedoptError

    session: dict[str, aiohttp.ClientSession] = {}

    async def infer(request: web.Request) -> web.Response:
        body = await request.read()
        loop = asyncio.get_running_loop()
        try:
            payload, ctype = await loop.run_in_executor(node.pool, node.compute, body)
        except (MedoptError, ValueError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        fwd = node.plan.forward
        if fwd is None:
            return web.Response(body=payload, content_type=ctype)
        if "s" not in session:
            session["s"] = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=fwd.timeout_s))
        try:
            async with session["s"].post(fwd.url.rstrip("/") + "/infer", data=payload,
                                         headers={"Content-Type": ctype}) as upstream:
                return web.Response(body=await upstream.read(), status=upstream.status,
                                    content_type=upstream.content_type)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return web.json_response({"error": f"upstream {fwd.url}: {exc.__class__.__name__}"}, status=502)

    async def ready(_: web.Request) -> web.Response:
        return web.json_response({"ready": True, "name": node.plan.name})

    async def close(_: web.Application) -> None:
        if "s" in session:
            await session["s"].close()

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/infer", infer)
    app.router.add_get("/ready", ready)
    app.on_cleanup.append(close)
    return app


async def _serve(plan: NodePlan, port: int) -> None:
    from aiohttp import web

    runner = web.AppRunner(_app(_Node(plan)))
    await runner.setup()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    await web.SockSite(runner, sock).start()
    print(sock.getsockname()[1], flush=True)
    await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> int:
    """``python -m medopt.bench.node PLAN.json [PORT]``: prints the bound port once ready."""
    from medopt.errors import MedoptError

    args = sys.argv[1:] if argv is None else argv
    try:
        plan = NodePlan.model_validate_json(Path(args[0]).read_text())
        asyncio.run(_serve(plan, int(args[1]) if len(args) > 1 else 0))
    except (MedoptError, ValueError, OSError) as exc:
        print(f"medopt bench node: {exc}".splitlines()[0], file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
