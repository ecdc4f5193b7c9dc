"""The printed report of bench/inference_socket.py: each phase's times, where the socket's time went
(from the mask frames' own ``timings``), and the figures against their goals."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from inference.dispatch import INLINE_THREADS

from .client import Reply

GOAL_BYTES = 10_000

Row = tuple[str, str, str, bool | None]  # figure, value, goal, met (None: no goal)


def stats(seconds: list[float]) -> tuple[float, float]:
    ms = np.array(seconds) * 1000
    return float(np.median(ms)), float(np.percentile(ms, 95))


def line(label: str, seconds: list[float]) -> str:
    median, p95 = stats(seconds)
    return f"  {label:<58} median {median:9.1f} ms   p95 {p95:9.1f} ms   (n={len(seconds)})"


def phase_lines(replies: list[Reply], indent: str = "    ") -> list[str]:
    """Where the time of the socket's round trips went, from the frames' own timings."""
    t = {key: [r.timings[key] / 1000 for r in replies] for key in ("total_ms", "queue_ms", "encode_ms", "decode_ms")}
    rest = [total - queue - encode - decode for total, queue, encode, decode in zip(*t.values(), strict=True)]
    transport = [r.seconds - total for r, total in zip(replies, t["total_ms"], strict=True)]
    return [
        line(f"{indent}server total_ms (message in -> reply out)", t["total_ms"]),
        line(f"{indent}  queue_ms (behind earlier prompts, thread pool)", t["queue_ms"]),
        *([line(f"{indent}  encode_ms", t["encode_ms"])] if any(t["encode_ms"]) else []),
        line(f"{indent}  decode_ms (predict(), any wait for the one decoder)", t["decode_ms"]),
        line(f"{indent}  rest (look-ups, mask -> RLE, save, thread hops)", rest),
        line(f"{indent}transport (round trip - total_ms: socket, JSON)", transport),
    ]


def compare(ours: list[Reply], raw: list[float]) -> tuple[float, float]:
    socket_median, raw_median = stats([r.seconds for r in ours])[0], stats(raw)[0]
    return socket_median / raw_median, socket_median - raw_median


def report(args: argparse.Namespace, result: dict[str, Any], untrained: bool) -> list[Row]:
    table: list[Row] = []
    warm, cold = result["warm"], result["cold"]
    print(f"(a) warm click -> mask: a new object from one click on an item whose embedding is cached, n={args.warm}")
    print(line("raw predictor.predict(), image set", warm.raw))
    print(line("studio socket: prompt sent -> mask frame read", [r.seconds for r in warm.ours]))
    print("\n".join(phase_lines(warm.ours)))
    ratio, extra = compare(warm.ours, warm.raw)
    print(
        f"  ratio of medians {ratio:.3f}x, difference of medians {extra:+.1f} ms; "
        f"masks identical to the raw predictor's: {warm.same_masks}/{args.warm}"
    )
    table.append(
        (
            "(a) warm click, socket / raw predict() (median)",
            f"{ratio:.2f}x, {extra:+.1f} ms",
            "<= 1.15x, <= +5 ms",
            ratio <= 1.15 and extra <= 5,
        )
    )
    print(f"(b) first click on a never-seen item (its encode included), n={args.cold}")
    print(line("raw set_image() + predict()", cold.raw))
    print(line("studio socket: prompt sent -> mask frame read", [r.seconds for r in cold.ours]))
    print("\n".join(phase_lines(cold.ours)))
    ratio, extra = compare(cold.ours, cold.raw)
    print(
        f"  ratio of medians {ratio:.3f}x, difference of medians {extra:+.1f} ms; "
        f"masks identical to the raw predictor's: {cold.same_masks}/{args.cold}"
    )
    table.append(
        (
            "(b) first click, socket / raw set_image()+predict() (median)",
            f"{ratio:.2f}x, {extra:+.0f} ms",
            "<= 1.10x",
            ratio <= 1.10,
        )
    )

    print("(c) bytes per mask frame (its JSON text)")
    print("  realistic object masks: smooth blobs, through annotation.masks.mask_encode into a real mask frame")
    for share, size, chars, took in result["realistic"]:
        print(
            f"    blob over {share:5.1%} of the image: frame {size:7,} bytes (RLE counts {chars:,} characters; "
            f"mask_encode here {took:.1f} ms)"
        )
    realistic = max(row[1] for row in result["realistic"])
    table.append(
        (
            "(c) mask frame, realistic object mask 5-20 % (synthetic), largest",
            f"{realistic:,} bytes",
            f"<= {GOAL_BYTES:,} bytes",
            realistic <= GOAL_BYTES,
        )
    )
    kind = "random weights: noise-like masks, not object-like" if untrained else "trained weights"
    print(f"  this model's masks as they came back over the socket ({kind}):")
    clicked = [r.size for r in warm.ours + cold.ours]
    shares = [share for _, share in result["boxes"]]
    boxed = sorted(size for size, _ in result["boxes"])
    print(
        f"    click prompts of (a) and (b): median {int(np.median(clicked)):,} bytes, largest {max(clicked):,} "
        f"(mask_encode here of the last of (a): {result['noise_encode_ms']:.1f} ms)"
    )
    print(
        f"    box prompts around 5-20 % of the image: median {int(np.median(boxed)):,} bytes, largest "
        f"{boxed[-1]:,} (masks over {min(shares):.0%}-{max(shares):.0%} of the image)"
    )
    table.append(
        (
            f"(c) mask frame, this model's box-prompt masks ({'noise' if untrained else 'trained'}), median",
            f"{int(np.median(boxed)):,} bytes",
            "none: not object masks" if untrained else f"<= {GOAL_BYTES:,} bytes",
            None if untrained else np.median(boxed) <= GOAL_BYTES,
        )
    )

    alone, together = result["alone"], result["together"]
    spread = (
        "one annotator and item per socket"
        if args.items == args.clients
        else f"{args.clients / args.items:.3g} sockets per item, of its annotator"
    )
    apart = f" ({args.think_ms:g} ms apart)" if args.think_ms else ""
    print(
        f"(d) {args.clients} sockets clicking at once, {args.rounds} clicks each back to back{apart}, on "
        f"{args.items} items with warm embeddings ({spread}); inline inference, {INLINE_THREADS} threads"
    )
    print(line("one socket alone: prompt sent -> mask frame read", [r.seconds for r in alone]))
    print("\n".join(phase_lines(alone)))
    print(line(f"{args.clients} sockets at once: prompt sent -> mask frame read", [r.seconds for r in together]))
    print("\n".join(phase_lines(together)))
    p95_alone, p95_together = stats([r.seconds for r in alone])[1], stats([r.seconds for r in together])[1]
    print(
        f"  {len(together)} masks in {result['wall']:.1f} s ({len(together) / result['wall']:.1f} a second); "
        f"frames pushed to sockets for others' saves on their item: {result['pushed']}"
    )
    print(f"  p95 ratio {p95_together / p95_alone:.2f}x ({p95_together:.0f} ms vs {p95_alone:.0f} ms alone)")
    table.append(
        (
            f"(d) p95, {args.clients} sockets at once / one alone",
            f"{p95_together / p95_alone:.2f}x",
            "<= 2x",
            p95_together / p95_alone <= 2,
        )
    )
    return table


def summary(table: list[Row]) -> None:
    print("summary")
    for figure, value, goal, met in table:
        verdict = "-" if met is None else "MET" if met else "NOT MET"
        print(f"  {figure:<66} {value:>18}   goal {goal:<24} {verdict}")
