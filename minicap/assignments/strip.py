"""The solution stripper: turn minicap's reference source into the student's.

Solutions are marked inside function bodies, the syntax nbgrader and Otter use:

    def rnn_step_forward(x, prev_h, Wx, Wh, b):
        \"\"\"... the docstring stays ...\"\"\"
        # BEGIN SOLUTION
        next_h = np.tanh(x @ Wx + prev_h @ Wh + b)
        return next_h, (x, prev_h, Wx, Wh, next_h)
        # END SOLUTION

`strip_source(source, functions, assignment)` replaces each marked region inside one of `functions`
by `raise NotImplementedError("rnn_step_forward: ...")` at the marker's indentation, and deletes the
marker lines of every other region (the reference code stays, for everything not assigned).
"""
import ast

BEGIN, END = "# BEGIN SOLUTION", "# END SOLUTION"


class MarkerError(ValueError):
    """Markers that do not pair up, or an assigned function without a marked region."""


def solution_regions(source, filename="<source>"):
    """The marked regions of `source`: a list of (function name, begin line, end line, indent), with
    0-based line numbers of the two marker lines. The function is the innermost def that contains the
    region (None at module level)."""
    lines = source.splitlines()
    functions = [(node.lineno - 1, node.end_lineno - 1, node.name) for node in ast.walk(ast.parse(source, filename))
                 if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
    regions, open_at = [], None
    for number, line in enumerate(lines):
        marker = line.strip()
        if marker == BEGIN:
            if open_at is not None:
                raise MarkerError(f"{filename}:{number + 1}: {BEGIN} inside another region (opened at line {open_at + 1})")
            open_at = number
        elif marker == END:
            if open_at is None:
                raise MarkerError(f"{filename}:{number + 1}: {END} without a {BEGIN}")
            indent = lines[open_at][:len(lines[open_at]) - len(lines[open_at].lstrip())]
            # (the END comment may lie after the def's last statement, where ast ends the function)
            inside = [f for f in functions if f[0] < open_at <= f[1]]
            name = max(inside)[2] if inside else None   # the innermost: the latest start
            regions.append((name, open_at, number, indent))
            open_at = None
    if open_at is not None:
        raise MarkerError(f"{filename}:{open_at + 1}: {BEGIN} without an {END}")
    return regions


def strip_source(source, functions, assignment, filename="<source>"):
    """`source` with the marked regions of `functions` replaced by `raise NotImplementedError(...)` and
    every other marker line removed. Raises MarkerError when a listed function has no marked region."""
    lines = source.splitlines(keepends=True)
    regions = solution_regions(source, filename)
    missing = set(functions) - {name for name, *_ in regions}
    if missing:
        raise MarkerError(f"{filename}: no {BEGIN} region in {', '.join(sorted(missing))}")
    for name, begin, end, indent in sorted(regions, key=lambda r: r[1], reverse=True):
        if name in functions:
            message = f"{name}: write this function (assignment {assignment}; see its docstring and the sheet)"
            lines[begin:end + 1] = [f"{indent}raise NotImplementedError({message!r})\n"]
        else:
            del lines[end]
            del lines[begin]
    return "".join(lines)


def remove_markers(source, filename="<source>"):
    """`source` without its marker lines (the reference code of every region stays)."""
    return strip_source(source, (), None, filename)
