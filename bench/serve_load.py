#!/usr/bin/env python3
"""serve_load.py - a bounded load test of `internvl serve` on loopback (stdlib only).

C concurrent streaming clients send N chat completions in total (each with the same image
as a data: URL), each reading its server-sent events to the end. Reports time to first
token (p50/p99, from sending the request to the first content chunk), request latency,
completion tokens per second and requests per second over the wall time, the server's
gauges afterwards (/metrics: most sequences in one step, sequences running and KV blocks
used once the load is over) and, given the server's pid, its RSS when idle before and after. Every request must end with [DONE] and a
finish_reason; any error fails the run (exit 1).

  bench/serve_load.py --url http://127.0.0.1:PORT --image cat.jpg --clients 64 --requests 128 \
      --max-tokens 16 --max-tiles 1 [--text-only] [--pid SERVER_PID] [--json out.jsonl] [--label load]
"""
import argparse, base64, http.client, json, os, statistics, sys, threading, time, urllib.parse


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def one_request(host, port, body):
    """-> (ttft_s, latency_s, completion_tokens) or raises."""
    t0 = time.monotonic()
    c = http.client.HTTPConnection(host, port, timeout=600)
    c.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
    r = c.getresponse()
    if r.status != 200:
        raise RuntimeError(f"HTTP {r.status}: {r.read()[:300]!r}")
    ttft, usage, done, finish = None, None, False, None
    while True:
        line = r.readline()
        if not line:
            break
        line = line.strip()
        if not line.startswith(b"data: "):
            continue
        if line == b"data: [DONE]":
            done = True
            break
        d = json.loads(line[6:])
        if "error" in d:
            raise RuntimeError(f"error event: {d['error']}")
        if d.get("usage"):
            usage = d["usage"]
        for ch in d["choices"]:
            if ch["delta"].get("content") and ttft is None:
                ttft = time.monotonic() - t0
            finish = ch.get("finish_reason") or finish
    c.close()
    if not done or not finish or not usage:
        raise RuntimeError(f"incomplete stream (done={done}, finish={finish}, usage={usage})")
    return (ttft if ttft is not None else time.monotonic() - t0, time.monotonic() - t0,
            usage["completion_tokens"])


def metrics(host, port):
    """The server's /metrics gauges and counters without labels, as a dict."""
    c = http.client.HTTPConnection(host, port, timeout=30)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    c.close()
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and not line.startswith("#") and "{" not in parts[0]:
            out[parts[0]] = float(parts[1])
    return out


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, int(round(p / 100.0 * len(xs) + 0.5)) - 1))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--image")
    ap.add_argument("--text-only", action="store_true",
                    help="no image: the engine's batching without the image decoding and tiling")
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--requests", type=int, default=128)
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--max-tiles", type=int, default=1)
    ap.add_argument("--pid", type=int)
    ap.add_argument("--json")
    ap.add_argument("--label", default="load")
    a = ap.parse_args()
    if not a.image and not a.text_only:
        ap.error("--image is needed (or --text-only)")
    u = urllib.parse.urlparse(a.url)
    content = [{"type": "text", "text": "Describe the image."}]
    if not a.text_only:
        url = "data:image/jpeg;base64," + base64.b64encode(open(a.image, "rb").read()).decode()
        content.insert(0, {"type": "image_url", "image_url": {"url": url}})
    body = json.dumps({"messages": [{"role": "user", "content": content}],
        "max_tokens": a.max_tokens, "max_tiles": a.max_tiles, "temperature": 0, "stream": True,
        "stream_options": {"include_usage": True}})
    one_request(u.hostname, u.port, body)   # warm-up: first-touch allocations
    time.sleep(1.5)   # the server trims its heap after 0.5 s idle
    rss_idle = rss_mib(a.pid) if a.pid else None
    results, errors, lock = [], [], threading.Lock()
    left = [a.requests]

    def worker():
        while True:
            with lock:
                if left[0] == 0:
                    return
                left[0] -= 1
            try:
                res = one_request(u.hostname, u.port, body)
                with lock:
                    results.append(res)
            except Exception as e:   # noqa: BLE001 - every failure is reported
                with lock:
                    errors.append(str(e))

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(a.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    time.sleep(2.0)
    rss_after = rss_mib(a.pid) if a.pid else None
    m = metrics(u.hostname, u.port)
    ttft = [r[0] for r in results]
    lat = [r[1] for r in results]
    toks = sum(r[2] for r in results)
    rec = {"label": a.label, "clients": a.clients, "requests": a.requests, "ok": len(results),
           "errors": len(errors), "max_tokens": a.max_tokens, "max_tiles": 0 if a.text_only else a.max_tiles,
           "wall_s": round(wall, 3),
           "ttft_p50_s": round(pct(ttft, 50), 4) if ttft else None,
           "ttft_p99_s": round(pct(ttft, 99), 4) if ttft else None,
           "latency_p50_s": round(pct(lat, 50), 4) if lat else None,
           "latency_p99_s": round(pct(lat, 99), 4) if lat else None,
           "completion_tokens": toks, "tokens_per_s": round(toks / wall, 2),
           "requests_per_s": round(len(results) / wall, 3),
           "rss_idle_mib": round(rss_idle, 1) if rss_idle else None,
           "rss_after_mib": round(rss_after, 1) if rss_after else None,
           "peak_running": int(m.get("ivl_serve_running_sequences_peak", 0)),
           "running_after": int(m.get("ivl_serve_running_sequences", -1)),
           "kv_blocks_used_after": int(m.get("ivl_serve_kv_blocks_used", -1)),
           "prompt_tokens_cached": int(m.get("ivl_serve_prompt_tokens_cached_total", 0)),
           "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    print(json.dumps(rec))
    if a.json:
        with open(a.json, "a") as f:
            f.write(json.dumps(rec) + "\n")
    for e in errors[:5]:
        print("error:", e, file=sys.stderr)
    sys.exit(1 if errors or len(results) != a.requests else 0)


if __name__ == "__main__":
    main()
