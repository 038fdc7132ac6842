"""The README's examples are executed, so they stay true."""

from __future__ import annotations

import doctest
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_examples() -> None:
    result = doctest.testfile(str(README), module_relative=False, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 5
    assert result.failed == 0


def test_readme_quickstart_is_exactly_the_two_task_commands() -> None:
    text = README.read_text()
    block = text.split("## Quickstart", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert commands == ["python3 tasks.py report", "python3 tasks.py test"]
    ci = (README.parent / ".ci" / "run").read_text()
    assert "python3 tasks.py test" in ci


# Each benchmark figure the README states, beside the words of benchmarks/RESULTS.md that
# hold it (whitespace-insensitive): editing one without the other fails here.
RESULTS = README.parent / "benchmarks" / "RESULTS.md"
BENCHMARK_FIGURES = [
    # Zen 4, 2026-12-07 (stop 69): issue 13's targets
    ("forward took 0.024 s, 1.7x the time of one read", "0.0244 s median, **1.66x the two-thread"),
    ("`torch.compile` took 1.6x as long", "**torch.compile 1.60x our time**"),
    ("PyTorch eager 8.3x", "torch eager 8.30x"),
    (
        "0.2 MiB of extra memory",
        "| forward peak extra memory < 10 % of the logits | 0.2 MiB of 500",
    ),
    ("3.4e-7 off the float64 truth against eager's 6.2e-7", "3.37e-7 (torch 6.17e-7)"),
    ("gradient into a fresh array took 0.093 s", "the gradient into a fresh array 0.0929 s"),
    (
        "forward + backward took 2.9x as long and eager's 5.9x",
        "forward+backward 2.88x our time**, eager 5.94x",
    ),
    # Zen 4, 2026-12-03 afternoon: without Numba, crossent.torch on the CPU
    ("1.05x PyTorch eager's time on random logits and 0.96x", "1.05x / 0.96x eager's time"),
    ("0.77 s against eager's 1.18 s with 1.1 MiB", "0.77 s against eager's 1.18 s; 1.1 MiB"),
    # Zen 4, 2026-12-05 (stop 50): the no-Numba forward's latest run
    (
        "0.1996 s against eager's 0.2244 s, 1.1 MiB",
        "| without Numba: forward | 0.1996 s | 0.2244 s (1.12x) | | 1.1 MiB extra |",
    ),
    ("took 0.118 s in float32 and 0.132 s in bfloat16", "0.118 / 0.132 s; compile 3.0x / 2.0x"),
    ("`torch.compile` 3.0x and 2.0x as long, eager 12.8x and 3.4x", "eager 12.8x / 3.4x our time"),
    # Zen 4, read-only inputs: the first call's compilation
    (
        "4.8 s of CPU for the softmax loss and its gradient",
        "| softmax loss + gradient | 4.7 + 4.3 | 4.8 + 0.0 |",
    ),
    # Intel Xeon, AVX2 emulated, without Numba
    (
        "1.98-1.99x on a confident model's",
        "| peaked, AVX2 emulated, 7 turns / 9 turns | 1.99x / **1.98x** eager",
    ),
    # H200
    ("took 6.8x eager's time forward", "6.8x slower forward"),
    ("5.5x forward + backward", "5.5x slower"),
    ("2.1x the time of eager's `F.cross_entropy`", "from 15x to 2.1x eager's time"),
    (
        "2004 against 2132 MiB",
        "| the same, peak extra memory | 3169 MiB | 2132 MiB | 10958 MiB | 2004 MiB |",
    ),
    # distillation, Zen 4
    (
        "0.40 s best, 0.62 s median, and 2.4 GiB",
        "4096 x 32000 float32 eager              404.79 /   616.61",
    ),
    ("`kl_div`\nidiom takes 3.8-4.4 s", "plain torch       3796.90 /  4365.13"),
    ("under `torch.compile` 0.56-0.66 s", "compiled plain     562.37 /   658.43"),
    ("0.15 s and 0.34 s at 4096 x 32000, against 2.0 s and 2.2 s", "| 0.154 s (0.195) | 1.968 s"),
]


def _flat(text: str) -> str:
    """Single spaces; the README's multiplication signs and en dashes as x and -."""
    return (
        " ".join(text.split()).replace("\N{MULTIPLICATION SIGN}", "x").replace("\N{EN DASH}", "-")
    )


def test_readme_benchmark_figures_are_those_of_benchmarks_results() -> None:
    readme, results = _flat(README.read_text()), _flat(RESULTS.read_text())
    for in_readme, in_results in BENCHMARK_FIGURES:
        assert _flat(in_readme) in readme, f"README.md no longer says {in_readme!r}"
        assert _flat(in_results) in results, f"RESULTS.md no longer says {in_results!r}"


def test_readme_says_crossent_torch_is_slower_on_the_gpu() -> None:
    """RESULTS.md's H200 section: no crossent.torch call beats eager PyTorch on the GPU."""
    results = _flat(RESULTS.read_text())
    assert "**Neither beats eager PyTorch or `torch.compile` on the GPU**" in results
    readme = _flat(README.read_text())
    assert "**On a GPU `crossent.torch` is slower than PyTorch, eager and compiled**" in readme
