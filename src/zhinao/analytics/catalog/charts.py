"""Charts for catalogue runs: matplotlib on the Agg backend, PNG bytes, Chinese labels.

Chinese is first-class, so the first installed CJK font (Noto Sans/Serif CJK, WenQuanYi,
Source Han, SimHei) is put at the front of the sans-serif list; without one, charts still
render (CJK glyphs become boxes) rather than failing a run.
"""

from __future__ import annotations

import functools
import io
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

_CJK_FAMILIES = ("Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Serif CJK SC", "WenQuanYi Micro Hei",
                 "WenQuanYi Zen Hei", "Source Han Sans SC", "Source Han Sans CN", "SimHei",
                 "Microsoft YaHei", "AR PL UMing CN")


@functools.lru_cache(maxsize=1)
def cjk_font() -> str | None:
    """Name of the CJK font family used for charts, or None when none is installed."""
    from matplotlib import font_manager

    names = {f.name for f in font_manager.fontManager.ttflist}
    found = next((fam for fam in _CJK_FAMILIES if fam in names), None)
    if found is None:  # fonts installed after matplotlib built its cache
        for path in font_manager.findSystemFonts():
            low = path.lower()
            if "cjk" in low or "wqy" in low or "wenquanyi" in low:
                try:
                    font_manager.fontManager.addfont(path)
                except Exception:  # a broken font file must not break a run
                    continue
        names = {f.name for f in font_manager.fontManager.ttflist}
        found = next((fam for fam in _CJK_FAMILIES if fam in names), None)
    if found:
        matplotlib.rcParams["font.sans-serif"] = [found, *matplotlib.rcParams["font.sans-serif"]]
        matplotlib.rcParams["font.family"] = "sans-serif"
    matplotlib.rcParams["axes.unicode_minus"] = False
    return found


def figure(w: float = 6.4, h: float = 4.2):
    """A (figure, axes) pair outside pyplot's global state, so job threads can draw concurrently."""
    from matplotlib.figure import Figure

    cjk_font()
    fig = Figure(figsize=(w, h), dpi=100)
    return fig, fig.subplots()


def to_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    if plt.fignum_exists(getattr(fig, "number", -1)):
        plt.close(fig)
    return buf.getvalue()


def roc_chart(y_true: Sequence[int], scores: Sequence[float], title: str = "ROC",
              baseline_scores: Sequence[float] | None = None) -> bytes:
    from sklearn.metrics import auc, roc_curve

    fig, ax = figure(5.2, 4.6)
    fpr, tpr, _ = roc_curve(y_true, scores)
    ax.plot(fpr, tpr, label=f"model AUC={auc(fpr, tpr):.3f}")
    if baseline_scores is not None:
        bf, bt, _ = roc_curve(y_true, baseline_scores)
        ax.plot(bf, bt, "--", label=f"baseline AUC={auc(bf, bt):.3f}")
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set_xlabel("假阳性率 False positive rate")
    ax.set_ylabel("真阳性率 True positive rate")
    ax.set_title(title)
    ax.legend(loc="lower right")
    return to_png(fig)


def confusion_chart(y_true: Sequence[Any], y_pred: Sequence[Any], labels: Sequence[Any],
                    display: Sequence[str] | None = None, title: str = "混淆矩阵 Confusion matrix") -> bytes:
    from sklearn.metrics import confusion_matrix

    cm = confusion_matrix(y_true, y_pred, labels=list(labels))
    n = len(labels)
    fig, ax = figure(max(4.0, 0.55 * n + 2.5), max(3.6, 0.5 * n + 2.0))
    ax.imshow(cm, cmap="Blues")
    names = list(display) if display is not None else [str(x) for x in labels]
    ax.set_xticks(range(n), names, rotation=45 if n > 4 else 0, ha="right" if n > 4 else "center")
    ax.set_yticks(range(n), names)
    ax.set_xlabel("预测 Predicted")
    ax.set_ylabel("实际 Actual")
    vmax = cm.max() or 1
    for i in range(n):
        for j in range(n):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                    color="white" if cm[i, j] > vmax / 2 else "black", fontsize=8 if n > 6 else 10)
    ax.set_title(title)
    return to_png(fig)


def bar_chart(names: Sequence[str], values: Sequence[float], title: str, xlabel: str = "",
              top: int = 15) -> bytes:
    """Horizontal bars of the ``top`` largest absolute values (importances, coefficients)."""
    vals = np.asarray(values, dtype=float)
    order = np.argsort(-np.abs(vals))[:top][::-1]
    fig, ax = figure(6.4, max(3.0, 0.3 * len(order) + 1.2))
    colors = ["#c0392b" if vals[i] > 0 else "#2e86c1" for i in order]
    ax.barh([str(names[i]) for i in order], vals[order], color=colors)
    ax.set_title(title)
    if xlabel:
        ax.set_xlabel(xlabel)
    return to_png(fig)


def metric_comparison_chart(metrics: dict[str, float], baseline: dict[str, float], title: str,
                            baseline_name: str = "baseline") -> bytes:
    """Model vs baseline on every metric both report."""
    names = [k for k in metrics if k in baseline]
    fig, ax = figure(6.4, 3.6)
    x = np.arange(len(names))
    ax.bar(x - 0.2, [metrics[k] for k in names], 0.4, label="模型 model")
    ax.bar(x + 0.2, [baseline[k] for k in names], 0.4, label=f"基线 {baseline_name}")
    ax.set_xticks(x, names)
    ax.set_title(title)
    ax.legend()
    return to_png(fig)


def line_chart(series: dict[str, tuple[Sequence[Any], Sequence[float]]], title: str,
               xlabel: str = "", ylabel: str = "") -> bytes:
    """Several named (x, y) lines on one axis (forecast vs actual, lift curves ...)."""
    fig, ax = figure(8.0, 4.0)
    for name, (x, y) in series.items():
        ax.plot(list(x), list(y), label=name)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend()
    fig.autofmt_xdate()
    return to_png(fig)
