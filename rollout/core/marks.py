"""Timing remote scripts by phase: a shell function that prints `mark NAME TIME`, and its reader."""

from __future__ import annotations

# /proc/uptime (10 ms steps) is read with a builtin, without forking; date is the fallback.
FUNCTION = 'mark() { if [ -r /proc/uptime ]; then read -r t _ < /proc/uptime; else t=$(date +%s.%N); fi; echo "mark $1 $t"; }'


def seconds(output: str) -> dict[str, float]:
    """Seconds per phase from a script's `mark` lines: each phase ends at its mark and starts at the previous one."""
    marks = []
    for line in output.splitlines():
        words = line.split()
        if len(words) == 3 and words[0] == "mark":
            try:
                marks.append((words[1], float(words[2])))
            except ValueError:
                pass
    return {name: round(t1 - t0, 3) for (_, t0), (name, t1) in zip(marks, marks[1:])}
