"""The facesync node in a real ComfyUI server, driven as the frontend drives it.

Run by ``cargo xtask test comfyui`` (which sets up the server and this environment):

    python comfyui_bench.py --comfyui <ComfyUI dir> --work <scratch dir> [--runs 5]

Makes a 300-frame 720p clip with speech (facesync's built-in face sample, padded to
1280x720, H.264 + AAC). Then, ``--runs`` times, starts a fresh server on a free loopback port
with only the facesync custom node and over HTTP + websocket runs LoadVideo ->
GetVideoComponents -> facesync lip sync -> CreateVideo -> SaveVideo once to the end, then
interrupts it at several points. Then, in a fresh server started as a portable ComfyUI starts
(its interpreter by path: no activated environment, no ``ORT_DYLIB_PATH``, this environment's
``bin`` off ``PATH``), the IMAGE workflow on 2 s of the clip with a Wav2Lip-96 ONNX file (random
weights, ``crates/onnx-models/tests/make_models.py``) chosen from ``models/facesync/``. Prints

    comfyui-bench: first_progress_s=<a> last_gap_s=<b> max_stall_ms=<c> interrupt_max_s=<d> interrupt_node_max_s=<d'> peak_rss_gb=<e> model_run=<ok|fail>

each the largest over the runs. a: from the node's ``executing`` message to its first
``progress`` above 0; b: from its last ``progress`` to the next node's ``executing`` (the node
returned); c: the slowest answer of ``GET /queue``, asked every 20 ms while the node runs
(HTTP and the websocket share the server's event loop); d: the slowest ``POST /interrupt`` ->
``execution_interrupted`` (and ``interrupt_node_max_s``: to the wall-clock stamp the server
puts on that message when the node has raised; the rest is the message's way out, which
ComfyUI's own ``gc.collect()`` after a prompt can hold up); e: the server's peak resident
memory during the full run (its baseline, the IMAGE tensors in and out, and the peak while
each node ran are logged before); model_run: whether the model workflow succeeded. Each run is logged on its own line, and the
slow ``GET /queue`` answers with their times in the node. Then, in a fresh server, LoadVideo
-> facesync lip sync (video) -> SaveVideo once, logged on one line (a, b, c and its memory: no
IMAGE batch exists in that workflow).
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid

import facesync
import websocket

FRAMES, WIDTH, HEIGHT, FPS = 300, 1280, 720, 25
NODE = "3"
#: The model run's clip: its first frames, and the model file's name in models/facesync.
MODEL_FRAMES, MODEL_FILE = 50, "wav2lip_96.onnx"
MAKE_MODELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir,
                           "onnx-models", "tests", "make_models.py")


def log(message):
    print(message, file=sys.stderr, flush=True)


def make_clip(work, input_dir):
    """300 frames of the face sample (720x720, padded to 1280x720) with its speech."""
    path = os.path.join(input_dir, "facesync-bench.mp4")
    if os.path.exists(path):
        return os.path.basename(path)
    video, audio = facesync.write_sample(work, seconds=FRAMES / FPS, size=HEIGHT, fps=FPS)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", video, "-i", audio,
                    "-vf", f"pad={WIDTH}:{HEIGHT}:{(WIDTH - HEIGHT) // 2}:0",
                    "-c:v", "libx264", "-crf", "18", "-pix_fmt", "yuv420p",
                    "-c:a", "aac", "-shortest", path + ".tmp.mp4"], check=True)
    os.replace(path + ".tmp.mp4", path)
    return os.path.basename(path)


def make_short_clip(input_dir, clip):
    """The clip's first MODEL_FRAMES frames (and their sound), for the model run."""
    path = os.path.join(input_dir, "facesync-bench-short.mp4")
    if not os.path.exists(path):
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", os.path.join(input_dir, clip),
                        "-frames:v", str(MODEL_FRAMES), "-t", str(MODEL_FRAMES / FPS),
                        "-c:v", "libx264", "-crf", "18", "-pix_fmt", "yuv420p", "-c:a", "aac",
                        path + ".tmp.mp4"], check=True)
        os.replace(path + ".tmp.mp4", path)
    return os.path.basename(path)


def install_model(comfyui, work):
    """A Wav2Lip-96 ONNX file with random weights in ComfyUI's models/facesync folder."""
    folder = os.path.join(comfyui, "models", "facesync")
    target = os.path.join(folder, MODEL_FILE)
    if not os.path.exists(target):
        made = os.path.join(work, "models")
        subprocess.run([sys.executable, MAKE_MODELS, made], check=True,
                       stdout=subprocess.DEVNULL)
        os.makedirs(folder, exist_ok=True)
        shutil.copyfile(os.path.join(made, MODEL_FILE), target + ".tmp")
        os.replace(target + ".tmp", target)
    return MODEL_FILE


def portable_env():
    """This process's environment as a portable ComfyUI sees it: no activated virtual
    environment, no ONNX Runtime path, and no ``bin`` of this environment on ``PATH`` (so a
    ``python3`` found there is another interpreter, without onnxruntime or facesync)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTUAL_ENV", "ORT_DYLIB_PATH", "PYTHONHOME", "CONDA_PREFIX")}
    own = os.path.dirname(sys.executable)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if p and os.path.abspath(p) != os.path.abspath(own))
    return env


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


#: The node's folder in custom_nodes/ (``cargo xtask dist``'s zip, unpacked there).
NODE_FOLDER = "comfyui-facesync"


class Server:
    def __init__(self, comfyui, port, env=None):
        self.url = f"http://127.0.0.1:{port}"
        self.log = open(os.path.join(comfyui, "facesync-bench-server.log"), "w")
        self.process = subprocess.Popen(
            [sys.executable, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
             "--disable-auto-launch", "--disable-api-nodes", "--disable-all-custom-nodes",
             "--whitelist-custom-nodes", NODE_FOLDER],
            cwd=comfyui, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.time() + 300
        while True:
            if self.process.poll() is not None:
                raise SystemExit(f"the ComfyUI server exited ({self.process.returncode}); "
                                 f"see {self.log.name}")
            try:
                self.get("/queue")
                break
            except OSError:
                if time.time() > deadline:
                    raise SystemExit("the ComfyUI server did not answer within 300 s")
                time.sleep(0.5)

        # The node folder (the release zip, unpacked as a user does) loaded: /object_info lists
        # its nodes, as the frontend's node library reads them.
        listed = self.get("/object_info")
        missing = [n for n in ("FacesyncLipSync", "FacesyncLipSyncVideo") if n not in listed]
        if missing:
            raise SystemExit(f"/object_info does not list {missing}: custom_nodes/{NODE_FOLDER} "
                             f"did not load; see {self.log.name}")

    def get(self, path):
        with urllib.request.urlopen(self.url + path, timeout=30) as r:
            return json.loads(r.read())

    def post(self, path, body=None):
        data = json.dumps(body or {}).encode()
        request = urllib.request.Request(self.url + path, data=data,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as r:
            text = r.read()
        return json.loads(text) if text else None

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


class Client:
    """The websocket, read on a thread: every message with its arrival time."""

    def __init__(self, server):
        self.id = str(uuid.uuid4())
        self.ws = websocket.create_connection(
            server.url.replace("http", "ws") + f"/ws?clientId={self.id}", timeout=600)
        self.ws.send(json.dumps({"type": "feature_flags",
                                 "data": {"supports_preview_metadata": True}}))
        self.messages = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        while True:
            try:
                message = self.ws.recv()
            except Exception:
                return
            t = time.perf_counter()
            if isinstance(message, str):
                message = json.loads(message)
            with self.cond:
                self.messages.append((t, message))
                self.cond.notify_all()

    def wait_for(self, predicate, timeout=1800):
        deadline = time.time() + timeout
        with self.cond:
            while True:
                for t, m in self.messages:
                    if isinstance(m, dict) and predicate(m):
                        return t, m
                left = deadline - time.time()
                if left <= 0:
                    raise SystemExit("timed out waiting for the server")
                self.cond.wait(left)


def workflow(clip, steps, video=False, model="builtin"):
    if video:
        return {
            "1": {"class_type": "LoadVideo", "inputs": {"file": clip}},
            NODE: {"class_type": "FacesyncLipSyncVideo", "inputs": {
                "video": ["1", 0], "model": "builtin", "resolution": "256", "steps": steps,
                "no_face": "pass", "backend": "auto"}},
            "5": {"class_type": "SaveVideo", "inputs": {
                "video": [NODE, 0], "filename_prefix": "facesync-bench", "format": "auto",
                "codec": "auto"}},
        }
    return {
        "1": {"class_type": "LoadVideo", "inputs": {"file": clip}},
        "2": {"class_type": "GetVideoComponents", "inputs": {"video": ["1", 0]}},
        NODE: {"class_type": "FacesyncLipSync", "inputs": {
            "images": ["2", 0], "audio": ["2", 1], "fps": ["2", 2], "model": model,
            "resolution": "256",
            "steps": steps, "no_face": "pass", "backend": "auto"}},
        "4": {"class_type": "CreateVideo", "inputs": {
            "images": [NODE, 0], "audio": ["2", 1], "fps": ["2", 2]}},
        "5": {"class_type": "SaveVideo", "inputs": {
            "video": ["4", 0], "filename_prefix": "facesync-bench", "format": "auto",
            "codec": "auto"}},
    }


def submit(server, client, clip, steps, video=False, model="builtin"):
    answer = server.post("/prompt", {"prompt": workflow(clip, steps, video, model),
                                     "client_id": client.id})
    if answer.get("node_errors"):
        raise SystemExit(f"the server refused the workflow: {answer}")
    return answer["prompt_id"]


def is_(kind, prompt_id, **data):
    def check(m):
        d = m.get("data") or {}
        return (m.get("type") == kind and d.get("prompt_id") == prompt_id
                and all(d.get(k) == v for k, v in data.items()))
    return check


def history(server, prompt_id, timeout=30):
    """The prompt's /history entry. ComfyUI sends ``execution_success`` from the executor before
    its prompt worker stores the history, so the entry may appear a moment after the message."""
    deadline = time.time() + timeout
    while True:
        entry = server.get(f"/history/{prompt_id}").get(prompt_id)
        if entry is not None:
            return entry
        if time.time() > deadline:
            raise SystemExit(f"/history has no entry for prompt {prompt_id} after {timeout} s")
        time.sleep(0.05)


class Prober(threading.Thread):
    """GET /queue every 20 ms; the slowest answer to a request asked while `active`, and the
    slow ones (over 50 ms) with their start times. A request asked before the node started
    does not count: ComfyUI's executor holds the GIL for 0.14-0.16 s between
    GetVideoComponents and this node (measured with a GIL gap meter in the server: the gap
    ends before the node's first line runs), which is not the node's doing."""

    def __init__(self, server):
        super().__init__(daemon=True)
        self.server, self.active, self.done = server, False, threading.Event()
        self.slowest = 0.0
        self.slow = []

    def run(self):
        while not self.done.is_set():
            started = time.perf_counter()
            was_active = self.active
            self.server.get("/queue")
            took = time.perf_counter() - started
            if was_active:
                self.slowest = max(self.slowest, took)
                if took > 0.05:
                    self.slow.append((started, took))
            time.sleep(0.02)


class RssWatch(threading.Thread):
    """The server's resident memory every 20 ms: its peak, overall and while `active` (the
    facesync node), and the samples with their times (to find the node that made the peak)."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.done, self.active = pid, threading.Event(), False
        self.peak = self.node_peak = 0
        self.samples = []

    def run(self):
        while not self.done.is_set():
            rss = rss_bytes(self.pid)
            self.samples.append((time.perf_counter(), rss))
            self.peak = max(self.peak, rss)
            if self.active:
                self.node_peak = max(self.node_peak, rss)
            time.sleep(0.02)


def peaks_by_node(client, base, prompt_id, samples, workflow_nodes):
    """{node class: peak RSS while it ran}, from the `executing` messages' times."""
    starts = [(t, m["data"]["node"]) for t, m in client.messages[base:]
              if isinstance(m, dict) and m.get("type") == "executing"
              and (m.get("data") or {}).get("prompt_id") == prompt_id]
    peaks = {}
    for t, rss in samples:
        running = [node for start, node in starts if start <= t]
        if running and running[-1] is not None:
            name = workflow_nodes[running[-1]]["class_type"]
            peaks[name] = max(peaks.get(name, 0), rss)
    return peaks


def full_run(server, client, clip, video=False):
    base = len(client.messages)
    baseline = rss_bytes(server.process.pid)
    rss = RssWatch(server.process.pid)
    rss.start()
    prober = Prober(server)
    prober.start()
    prompt_id = submit(server, client, clip, 20, video)
    t_start, _ = client.wait_for(is_("executing", prompt_id, node=NODE))
    prober.active = rss.active = True
    t_next, _ = client.wait_for(is_("executing", prompt_id, node="5" if video else "4"))
    prober.active = rss.active = False
    client.wait_for(lambda m: m.get("type") in ("execution_success", "execution_error")
                    and (m.get("data") or {}).get("prompt_id") == prompt_id)
    rss.done.set()
    prober.done.set()
    rss.join()
    prober.join()
    status = history(server, prompt_id)["status"]
    if status.get("status_str") != "success":
        raise SystemExit(f"the workflow failed: {json.dumps(status)[:2000]}")
    progress = [t for t, m in client.messages[base:]
                if isinstance(m, dict) and m.get("type") == "progress"
                and m["data"].get("node") == NODE and m["data"]["value"] > 0]
    texts = [m for _, m in client.messages[base:] if isinstance(m, bytes)]
    log(f"facesync {'VIDEO' if video else 'IMAGE'} node: {t_next - t_start:.1f} s "
        f"(from perf_counter {t_start:.3f}), {len(progress)} progress messages, "
        f"{len(texts)} binary messages (previews, text)")
    for started, took in prober.slow:
        log(f"slow GET /queue: {took * 1000:.0f} ms, asked {started - t_start:.2f} s into the node")
    peaks = peaks_by_node(client, base, prompt_id, rss.samples, workflow(clip, 20, video))
    log("server memory peak while each node ran: "
        + ", ".join(f"{name} {rss / 1e9:.2f} GB" for name, rss in peaks.items()))
    return {
        "first_progress_s": progress[0] - t_start,
        "last_gap_s": t_next - progress[-1],
        "max_stall_ms": prober.slowest * 1000,
        "node_s": t_next - t_start,
        "baseline": baseline,
        "peak": rss.peak,
        "node_peak": rss.node_peak,
    }


def bytes_text(message):
    """The text of a binary ``progress_text`` message (ComfyUI: event type 3, then the node
    id's length and id, then UTF-8 text), else ''."""
    if len(message) < 8 or int.from_bytes(message[:4], "big") != 3:
        return ""
    n = int.from_bytes(message[4:8], "big")
    return message[8 + n:].decode("utf-8", "replace")


def interrupted_run(server, client, clip, steps, fraction, node_s):
    prompt_id = submit(server, client, clip, steps)
    t_start, _ = client.wait_for(is_("executing", prompt_id, node=NODE))
    delay = fraction * node_s
    time.sleep(max(0.0, t_start + delay - time.perf_counter()))
    t_interrupt, wall_interrupt = time.perf_counter(), time.time()
    server.post("/interrupt")
    t_stop, m = client.wait_for(lambda m: m.get("type") in ("execution_interrupted",
                                                            "execution_success",
                                                            "execution_error")
                                and (m.get("data") or {}).get("prompt_id") == prompt_id)
    if m["type"] != "execution_interrupted":
        log(f"interrupt {delay:5.1f} s into the node: too late, the run ended first "
            f"({m['type']}); not counted")
        return None
    texts = [text for t, m in client.messages
             if isinstance(m, bytes) and t <= t_interrupt and (text := bytes_text(m))]
    phase = texts[-1].split(":")[0] if texts else "?"
    # When the server made the message (its wall-clock stamp, this machine's clock): the node
    # had stopped then; what comes after is the message's way out of the server's event loop.
    raised = m["data"]["timestamp"] / 1000 - wall_interrupt
    log(f"interrupt {delay:5.1f} s into the node: stopped after {t_stop - t_interrupt:.3f} s, "
        f"the server's message made after {raised:.3f} s (in {m['data'].get('node_type')}, its "
        f"text then: {phase!r}; asked at perf_counter {t_interrupt:.3f})")
    return t_stop - t_interrupt, raised


def model_run(comfyui, work, input_dir, clip):
    """The IMAGE workflow with the Wav2Lip file from models/facesync, in a fresh server started
    as a portable ComfyUI is (see :func:`portable_env`): whether it succeeded."""
    model = f"wav2lip:{install_model(comfyui, work)}"
    short = make_short_clip(input_dir, clip)
    server = Server(comfyui, free_port(), env=portable_env())
    try:
        client = Client(server)
        choices = server.get("/object_info/FacesyncLipSync")["FacesyncLipSync"]["input"]
        offered = json.dumps(choices)
        if model not in offered:
            log(f"model run: {model} is not among the node's choices: {offered[:500]}")
            return False
        prompt_id = submit(server, client, short, 20, model=model)
        t0 = time.perf_counter()
        client.wait_for(lambda m: m.get("type") in ("execution_success", "execution_error")
                        and (m.get("data") or {}).get("prompt_id") == prompt_id)
        status = history(server, prompt_id)["status"]
        ok = status.get("status_str") == "success"
        texts = [m for _, m in client.messages if isinstance(m, bytes)]
        log(f"model run ({model}, {MODEL_FRAMES} frames of 720p, server without an activated "
            f"environment): {'success' if ok else 'FAILED'} in {time.perf_counter() - t0:.1f} s"
            + ("" if ok else f": {json.dumps(status)[:2000]}"))
        if ok and not texts:
            log("model run: no text progress reached the client")
        return ok
    finally:
        server.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--comfyui", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--runs", type=int, default=5,
                        help="IMAGE workflows, each in a fresh server (default 5)")
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)
    input_dir = os.path.join(args.comfyui, "input")
    os.makedirs(input_dir, exist_ok=True)
    clip = make_clip(args.work, input_dir)
    results, delays = [], []
    for run in range(1, args.runs + 1):
        server = Server(args.comfyui, free_port())
        try:
            client = Client(server)
            result = full_run(server, client, clip)
            # Other step counts so that ComfyUI runs the node again (more steps: the points
            # stay inside the run).
            interrupts = [interrupted_run(server, client, clip, 20 + i, f, result["node_s"])
                          for i, f in enumerate([0.02, 0.3, 0.6, 0.75], start=1)]
        finally:
            server.stop()
        interrupts = [d for d in interrupts if d is not None]
        result["interrupt_max_s"] = max((d for d, _ in interrupts), default=float("nan"))
        result["interrupt_node_max_s"] = max((r for _, r in interrupts), default=float("nan"))
        log(f"IMAGE run {run} of {args.runs} (fresh server): "
            + " ".join(f"{k}={v:.3f}" for k, v in result.items()))
        tensors = 2 * FRAMES * WIDTH * HEIGHT * 3 * 4
        log(f"server memory: {result['baseline'] / 1e9:.2f} GB before the run, peak "
            f"{result['node_peak'] / 1e9:.2f} GB during the facesync node, "
            f"{result['peak'] / 1e9:.2f} GB over the workflow; IMAGE tensors in + out "
            f"{tensors / 1e9:.2f} GB")
        results.append(result)
        delays.extend(interrupts)
    model_ok = model_run(args.comfyui, args.work, input_dir, clip)
    # The VIDEO node (LoadVideo -> facesync -> SaveVideo) in a fresh server: no IMAGE batch
    # anywhere, so no GetVideoComponents (whose own peak is several times the batch).
    server = Server(args.comfyui, free_port())
    try:
        video = full_run(server, Client(server), clip, video=True)
    finally:
        server.stop()
    log(f"VIDEO workflow: first_progress_s={video['first_progress_s']:.2f} "
        f"last_gap_s={video['last_gap_s']:.2f} max_stall_ms={video['max_stall_ms']:.0f}; "
        f"server memory {video['baseline'] / 1e9:.2f} GB before the run, peak "
        f"{video['peak'] / 1e9:.2f} GB over the workflow")

    def worst(key):
        return max(r[key] for r in results)

    print(f"comfyui-bench: first_progress_s={worst('first_progress_s'):.2f} "
          f"last_gap_s={worst('last_gap_s'):.2f} max_stall_ms={worst('max_stall_ms'):.0f} "
          f"interrupt_max_s={max((d for d, _ in delays), default=float('nan')):.2f} "
          f"interrupt_node_max_s={max((r for _, r in delays), default=float('nan')):.2f} "
          f"peak_rss_gb={worst('peak') / 1e9:.2f} model_run={'ok' if model_ok else 'fail'}",
          flush=True)
    shutil.rmtree(os.path.join(args.comfyui, "output"), ignore_errors=True)


if __name__ == "__main__":
    main()
