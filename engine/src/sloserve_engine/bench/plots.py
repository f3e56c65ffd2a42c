"""Sweep plots: latency and attainment vs rate, KV usage over time (matplotlib, Agg)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def _by_policy(report: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for run in report["runs"]:
        out.setdefault(run["policy"], []).append(run)
    for runs in out.values():
        runs.sort(key=lambda r: r["rate"])
    return out


def write_plots(
    report: dict[str, Any],
    out_dir: Path,
    kv_usage: Mapping[str, np.ndarray] | None = None,
    prefix: str | None = None,
) -> list[Path]:
    """Write ``sim_<trace>_<scheduling>_{latency,attainment,kv}.png``; return their paths.

    ``kv_usage`` maps a label (policy @ rate) to its (time, KV usage) series.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    by_policy = _by_policy(report)
    bound = report["capacity_bound"]
    cfg = report["config"]
    title = (
        f"{cfg['trace']}, {cfg['requests']} req, {cfg['kv_tokens']} KV tokens, {cfg['scheduling']}"
    )
    prefix = prefix or f"sim_{cfg['trace']}_{cfg['scheduling']}"
    paths: list[Path] = []

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, runs in by_policy.items():
        rates = [r["rate"] for r in runs]
        (line,) = axes[0].plot(rates, [r["ttft_p50"] for r in runs], "o-", label=f"{name} p50")
        axes[0].plot(
            rates, [r["ttft_p99"] for r in runs], "s--", color=line.get_color(), label=f"{name} p99"
        )
        axes[1].plot(
            rates,
            [r["tbt_p50"] * 1e3 for r in runs],
            "o-",
            color=line.get_color(),
            label=f"{name} p50",
        )
        axes[1].plot(
            rates,
            [r["tbt_p99"] * 1e3 for r in runs],
            "s--",
            color=line.get_color(),
            label=f"{name} p99",
        )
    axes[0].axhline(cfg["slo_ttft_s"], color="grey", lw=0.8, ls=":")
    axes[1].axhline(cfg["slo_tbt_s"] * 1e3, color="grey", lw=0.8, ls=":")
    axes[0].set(xlabel="rate (req/s)", ylabel="TTFT (s)", yscale="log", title="TTFT")
    axes[1].set(xlabel="rate (req/s)", ylabel="TBT (ms)", title="time between tokens")
    for ax in axes:
        ax.axvline(bound, color="red", lw=0.8, ls="--")
        ax.legend(fontsize=7)
    fig.suptitle(title + f"; red: capacity bound {bound:.1f} req/s")
    fig.tight_layout()
    paths.append(out_dir / f"{prefix}_latency.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, runs in by_policy.items():
        rates = [r["rate"] for r in runs]
        (line,) = ax.plot(rates, [r["slo_attainment"] for r in runs], "o-", label=name)
        if all("strict_attainment" in r for r in runs):
            strict = [r["strict_attainment"] for r in runs]
            ax.plot(rates, strict, "s:", color=line.get_color(), label=f"{name} strict")
    ax.axhline(0.9, color="grey", lw=0.8, ls=":")
    ax.axvline(bound, color="red", lw=0.8, ls="--", label=f"capacity bound {bound:.1f}")
    ax.set(xlabel="rate (req/s)", ylabel="SLO attainment", ylim=(0, 1.02), title=title)
    ax.title.set_fontsize(8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    paths.append(out_dir / f"{prefix}_attainment.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    if kv_usage:
        fig, ax = plt.subplots(figsize=(8, 3.5))
        for label, series in kv_usage.items():
            ax.plot(series[:, 0], series[:, 1], lw=0.7, label=label)
        ax.set(xlabel="time (s)", ylabel="KV usage", ylim=(0, 1.02), title=title)
        ax.title.set_fontsize(8)
        ax.legend(fontsize=7)
        fig.tight_layout()
        paths.append(out_dir / f"{prefix}_kv.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    return paths
