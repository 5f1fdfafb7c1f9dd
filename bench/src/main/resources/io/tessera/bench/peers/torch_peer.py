"""PyTorch (Debian's python3-torch) attention peer for Tessera's main job.

Reads one JSON request on stdin, writes one JSON reply on stdout. The attention is the classic
bmm + masked softmax + bmm path a PyTorch 1.13 user runs (scaled_dot_product_attention arrived in 2.0).
"""
import json
import math
import sys
import time

import torch


def mask_of(pattern, n):
    if pattern == "dense":
        return None
    i = torch.arange(n).unsqueeze(1)
    j = torch.arange(n).unsqueeze(0)
    if pattern == "causal":
        return j <= i
    if pattern == "window256":
        return (i - j).abs() <= 256
    raise ValueError("unknown pattern " + pattern)


def attention(q, k, v, mask):
    scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(q.shape[-1]))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.matmul(torch.softmax(scores, dim=-1), v)


def main():
    request = json.load(sys.stdin)
    reply = {"torch": torch.__version__, "config": torch.__config__.parallel_info().splitlines()[:6], "results": []}
    with torch.no_grad():
        check = request.get("check")
        if check:
            h, n, d = check["heads"], check["n"], check["headDim"]
            q = torch.tensor(check["q"], dtype=torch.float32).reshape(h, n, d)
            k = torch.tensor(check["k"], dtype=torch.float32).reshape(h, n, d)
            v = torch.tensor(check["v"], dtype=torch.float32).reshape(h, n, d)
            reply["check"] = {p: attention(q, k, v, mask_of(p, n)).reshape(-1).tolist() for p in check["patterns"]}
        for case in request["cases"]:
            torch.set_num_threads(case["threads"])
            g = torch.Generator().manual_seed(1)
            shape = (1, case["heads"], case["n"], case["headDim"])
            q, k, v = (torch.randn(shape, generator=g) for _ in range(3))
            mask = mask_of(case["pattern"], case["n"])
            for _ in range(2):
                attention(q, k, v, mask)
            times = []
            for _ in range(case["repeats"]):
                t0 = time.perf_counter()
                attention(q, k, v, mask)
                times.append((time.perf_counter() - t0) * 1000)
            times.sort()
            reply["results"].append(dict(case, ms=times[len(times) // 2], msMin=times[0], msMax=times[-1]))
    json.dump(reply, sys.stdout)


if __name__ == "__main__":
    main()
