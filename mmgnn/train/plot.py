"""The training-curve figure of a run."""

from __future__ import annotations

from pathlib import Path

from mmgnn.utils.io import atomic_write


def plot_history(history: list[dict], path: str | Path, title: str = "") -> None:
    """Saves a PNG with the training loss per epoch (left) and the validation MRR against
    wall-clock minutes (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_mrr) = plt.subplots(1, 2, figsize=(10, 3.8))
    epochs = [h["epoch"] for h in history]
    ax_loss.plot(epochs, [h["loss"] for h in history], marker=".", color="tab:blue")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("training loss")
    ax_loss.grid(alpha=0.3)
    evals = [h for h in history if "valid_mrr" in h]
    ax_mrr.plot([h["minutes"] for h in evals], [h["valid_mrr"] for h in evals], marker="o",
                color="tab:orange")
    for h in evals:
        ax_mrr.annotate(str(h["epoch"]), (h["minutes"], h["valid_mrr"]), fontsize=7,
                        textcoords="offset points", xytext=(2, 3))
    ax_mrr.set_xlabel("wall-clock minutes (labels: epoch)")
    ax_mrr.set_ylabel("validation MRR (filtered)")
    ax_mrr.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    try:  # atomic, as the checkpoints: a killed run never leaves a truncated figure
        atomic_write(Path(path), lambda f: fig.savefig(f, format="png", dpi=110))
    finally:
        plt.close(fig)
