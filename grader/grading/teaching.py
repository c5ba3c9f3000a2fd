"""Teaching cells: cells of a lab's notebook that only show something, left out when grading.

A lab's notebook teaches with cells that print a table, draw a plot or compare two computations. Their
output is for the reader; no check needs it. The instructor tags such a cell ``teaching`` in the lab's
notebook (in the jupytext source: ``# %% nbgrader={...} tags=["teaching"]``; in Jupyter: the cell's tags). When a
submission is graded or self-checked, a code cell whose source is exactly a tagged cell of the lab's
notebook runs as an empty cell, unless a cell that does run uses a name it binds. So:

- a student's cell that uses a name a teaching cell defines gets that cell run, as in Jupyter: no honest
  answer can lose a point because a cell was left out (a cell that reaches names dynamically, through
  ``globals()``, ``eval``, ``get_ipython()`` and the like, keeps every teaching cell);
- only the lab's own cells can be left out (their source is compared, not their tags, which a student
  could edit), and a cell the student changed runs;
- the cell keeps its place, so cell numbers in notes are the notebook's.

Names are read from the code (``ast``), statement by statement: a cell that binds a name before it uses
it (``t = time.perf_counter()`` ... ``t``) does not need another cell's ``t``; a function's body runs when
it is called, after every cell, so the module names it reads count as read. Code the analysis cannot read
(too deep, too large) leaves nothing out. What the code cannot show is the author's to keep true: a
teaching cell must change no state another cell reads (no global random draws, no in-place edits of shared
objects such as a cache in a global dict, no files). ``tests/test_teaching_cells.py`` runs each lab's
notebook with and without its teaching cells and compares every other global, and grades each lab's model
solution both ways and requires identical results.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Optional

TAG = "teaching"
LEFT_OUT = "# a teaching cell: it only shows something, and grading leaves it out (grader/grading/teaching.py)"

# Names through which code can reach any global by a name computed at run time.
_DYNAMIC = {"globals", "locals", "vars", "dir", "eval", "exec", "get_ipython", "__builtins__", "__import__",
            "__main__", "__name__", "builtins", "compile", "execfile", "runfile"}
_DYNAMIC_ATTRS = {"__dict__", "f_globals", "f_locals", "user_ns", "user_global_ns", "__globals__",
                  "get_ipython", "run_cell", "ev", "ex"}
_FRAME_READERS = {"eval", "query"}  # pandas' df.eval("@x")/df.query("@x")/pd.eval read the caller's names
# Magics whose text is code or a shell line (its words count as names read), or that read no name.
_PLAIN_MAGICS = {"time", "timeit", "capture", "prun", "matplotlib", "config", "load_ext", "reload_ext",
                 "autoreload", "aimport", "precision", "pip", "conda", "cd", "pwd", "ls", "env", "set_env",
                 "system", "sx", "bash", "sh", "script", "writefile", "html", "markdown", "latex", "svg",
                 "javascript", "js", "debug", "pdb", "xmode", "sc", "alias"}
_MAGIC_CALLS = {"run_line_magic", "run_cell_magic", "system", "getoutput"}
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_EVERYTHING = "*"  # a cell reaches names dynamically, or binds names we cannot list (import *)


def _normal(src: str) -> str:
    return "\n".join(line.rstrip() for line in src.replace("\r\n", "\n").strip().splitlines())


def _targets(node: ast.AST) -> set[str]:
    """Names bound by an assignment target (a, (b, *c), d[i] binds nothing new)."""
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}


_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef, ast.ListComp, ast.SetComp,
           ast.GeneratorExp, ast.DictComp)


def _walk_module_scope(node: ast.AST):
    """The nodes of the module's own scope: not inside a function, lambda, class body or comprehension."""
    todo = [node]
    while todo:
        n = todo.pop()
        yield n
        if n is not node and isinstance(n, _SCOPES):
            continue
        todo.extend(ast.iter_child_nodes(n))


def binds(tree: ast.Module) -> set[str]:
    """The global names the cell may bind (more is safe: it keeps the cell)."""
    out: set[str] = set()
    for n in _walk_module_scope(tree):
        if isinstance(n, ast.Name) and isinstance(n.ctx, (ast.Store, ast.Del)):
            out.add(n.id)
        elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(n.name)
        elif isinstance(n, (ast.Import, ast.ImportFrom)):
            for a in n.names:
                if a.name == "*":
                    out.add(_EVERYTHING)
                out.add(a.asname or a.name.split(".")[0])
        elif isinstance(n, ast.ExceptHandler) and n.name:
            out.add(n.name)
        elif isinstance(n, (ast.MatchAs, ast.MatchStar)) and n.name:
            out.add(n.name)
        elif isinstance(n, ast.MatchMapping) and n.rest:
            out.add(n.rest)
    for n in ast.walk(tree):  # what reaches the module from inside a scope: global x
        if isinstance(n, ast.Global):
            out.update(n.names)
    todo = [tree]
    while todo:  # (x := ...) binds in the enclosing function or module, also from inside a comprehension
        n = todo.pop()
        if isinstance(n, ast.NamedExpr):
            out |= _targets(n.target)
        todo.extend(c for c in ast.iter_child_nodes(n)
                    if not isinstance(c, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)))
    return out


class _Uses(ast.NodeVisitor):
    """Names a statement reads from the module's globals that the cell has not surely bound before it.

    ``module`` is the stack of names the cell's module scope surely bound so far, one set per enclosing
    block (shared with the caller, never copied: the analysis stays linear). ``scopes`` are the enclosing
    scopes inside the statement, innermost last, each with whether it is a function's or lambda's (else a
    comprehension's or a loop's). A function body runs when it is called, after every cell has run: there
    the module's names are whatever the last cell bound, so they count as read from outside.
    """

    def __init__(self, module: list[set[str]]):
        self.module = module
        self.scopes: list[tuple[set[str], bool]] = []  # (names, a function's)
        self.out: set[str] = set()

    def _local(self, name: str) -> bool:
        if any(name in names for names, _ in self.scopes):
            return True
        in_function = any(is_function for _, is_function in self.scopes)
        return not in_function and any(name in names for names in self.module)

    def _read(self, name: str) -> None:
        if name in _DYNAMIC:
            self.out.add(_EVERYTHING)
        if not self._local(name):
            self.out.add(name)

    def _in(self, names: set[str], is_function: bool, nodes: Iterable[Optional[ast.AST]]) -> None:
        self.scopes.append((names, is_function))
        try:
            for n in nodes:
                if n is not None:
                    self.visit(n)
        finally:
            self.scopes.pop()

    def visit_Name(self, n: ast.Name):
        if isinstance(n.ctx, (ast.Load, ast.Del)):  # `del x` needs x too
            self._read(n.id)
        elif n.id in _DYNAMIC:
            self.out.add(_EVERYTHING)

    def visit_Import(self, n: ast.Import):
        if any(a.name.split(".")[0] in _DYNAMIC for a in n.names):  # import __main__, import builtins
            self.out.add(_EVERYTHING)

    def visit_ImportFrom(self, n: ast.ImportFrom):
        if (n.module or "").split(".")[0] in _DYNAMIC:  # from __main__ import X
            self.out.add(_EVERYTHING)

    def visit_Constant(self, n: ast.Constant):
        if isinstance(n.value, str) and n.value in _DYNAMIC:  # sys.modules["__main__"], getattr(b, "eval")
            self.out.add(_EVERYTHING)

    def visit_Attribute(self, n: ast.Attribute):
        if n.attr in _DYNAMIC_ATTRS or (n.attr == "modules" and isinstance(n.value, ast.Name)
                                        and n.value.id == "sys"):  # a namespace as a whole; sys.modules[...]
            self.out.add(_EVERYTHING)
        self.generic_visit(n)

    def visit_AugAssign(self, n: ast.AugAssign):
        if isinstance(n.target, ast.Name):
            self._read(n.target.id)  # x += 1 reads x first
        self.generic_visit(n)

    def visit_Call(self, n: ast.Call):
        f = n.func
        if isinstance(f, ast.Attribute) and f.attr in _FRAME_READERS and (n.args or n.keywords):
            self.out.add(_EVERYTHING)
        if (isinstance(f, ast.Attribute) and f.attr in _MAGIC_CALLS and isinstance(f.value, ast.Call)
                and isinstance(f.value.func, ast.Name) and f.value.func.id == "get_ipython"):
            name = n.args[0].value if n.args and isinstance(n.args[0], ast.Constant) else None
            if f.attr in ("run_line_magic", "run_cell_magic") and name not in _PLAIN_MAGICS:
                self.out.add(_EVERYTHING)  # %run, %store, %who, %reset, ... reach the namespace as a whole
            for a in n.args:  # a magic or shell line: every word of its text counts as used
                for c in ast.walk(a):
                    if isinstance(c, ast.Constant) and isinstance(c.value, str):
                        words = set(_WORD.findall(c.value))
                        self.out.update(w for w in words if not self._local(w))
                        if words & _DYNAMIC:
                            self.out.add(_EVERYTHING)
            return
        self.generic_visit(n)

    def _comprehension(self, n, elements):
        names: set[str] = set()
        self.visit(n.generators[0].iter)  # the first iterable is evaluated outside the comprehension
        self.scopes.append((names, False))
        try:
            for i, g in enumerate(n.generators):
                if i:
                    self.visit(g.iter)
                names |= _targets(g.target)
                for c in g.ifs:
                    self.visit(c)
            for e in elements:
                self.visit(e)
        finally:
            self.scopes.pop()

    def visit_ListComp(self, n):
        self._comprehension(n, [n.elt])

    visit_SetComp = visit_GeneratorExp = visit_ListComp

    def visit_DictComp(self, n):
        self._comprehension(n, [n.key, n.value])

    @staticmethod
    def _every_arg(args: ast.arguments) -> list[ast.arg]:
        return args.posonlyargs + args.args + args.kwonlyargs + [a for a in (args.vararg, args.kwarg) if a]

    def _at_definition(self, n) -> None:
        """Decorators, defaults and annotations are evaluated where the function is defined."""
        args = n.args
        for d in [*getattr(n, "decorator_list", []), *args.defaults, *[d for d in args.kw_defaults if d],
                  *[a.annotation for a in self._every_arg(args) if a.annotation is not None],
                  getattr(n, "returns", None)]:
            if d is not None:
                self.visit(d)

    def visit_Lambda(self, n: ast.Lambda):
        self._at_definition(n)
        self._in({a.arg for a in self._every_arg(n.args)}, True, [n.body])

    def visit_FunctionDef(self, n):
        self._at_definition(n)
        own = {a.arg for a in self._every_arg(n.args)} | (_locals(n.body) - _declared_global(n))
        self._in(own, True, n.body)  # run when called: after every cell

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_For(self, n):
        self.visit(n.iter)
        self._in(_targets(n.target), False, [*n.body, n.target])
        for s in n.orelse:  # an empty loop binds nothing before its else
            self.visit(s)

    visit_AsyncFor = visit_For


def _locals(body: list[ast.stmt]) -> set[str]:
    """Names a function body binds for itself (its nested scopes bind their own)."""
    return binds(ast.Module(body=body, type_ignores=[])) - {_EVERYTHING}


def _declared_global(fn: ast.AST) -> set[str]:
    return {name for n in ast.walk(fn) if isinstance(n, ast.Global) for name in n.names}


def _definite(stmt: ast.stmt) -> set[str]:
    """Names a simple statement surely binds once it has run."""
    if isinstance(stmt, (ast.Assign, ast.AnnAssign)) and getattr(stmt, "value", None) is not None:
        return set().union(*(_targets(t) for t in (stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target])))
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {stmt.name}
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        return {a.asname or a.name.split(".")[0] for a in stmt.names if a.name != "*"}
    return set()


def _block(stmts: list[ast.stmt], module: list[set[str]], out: set[str]) -> None:
    """Reads of a module-level block, statement by statement. A block inside ``if``/``with``/``try``/``for``/
    ``while`` sees what its enclosing blocks had bound and binds only for itself (``module`` is a stack)."""
    def nested(body, names=()):
        module.append(set(names))
        try:
            _block(body, module, out)
        finally:
            module.pop()

    for stmt in stmts:
        if isinstance(stmt, (ast.If, ast.While, ast.With, ast.AsyncWith, ast.Try, ast.For, ast.AsyncFor)):
            head = _Uses(module)
            if isinstance(stmt, (ast.If, ast.While)):
                head.visit(stmt.test)
            elif isinstance(stmt, (ast.With, ast.AsyncWith)):
                for item in stmt.items:
                    head.visit(item)
            elif isinstance(stmt, (ast.For, ast.AsyncFor)):
                head.visit(stmt.iter)
                head.visit(stmt.target)
            out |= head.out
            names: set[str] = set()
            if isinstance(stmt, (ast.For, ast.AsyncFor)):
                names = _targets(stmt.target)
            elif isinstance(stmt, (ast.With, ast.AsyncWith)):
                names = set().union(*(_targets(i.optional_vars) for i in stmt.items if i.optional_vars))
            nested(stmt.body, names)
            for field in ("orelse", "finalbody"):  # a for loop's else: the loop may not have run
                if getattr(stmt, field, None):
                    nested(getattr(stmt, field), names if isinstance(stmt, (ast.With, ast.AsyncWith)) else ())
            for handler in getattr(stmt, "handlers", []):
                h = _Uses(module)
                if handler.type is not None:
                    h.visit(handler.type)
                out |= h.out
                nested(handler.body, {handler.name} if handler.name else ())
            continue
        v = _Uses(module)
        v.visit(stmt)
        out |= v.out
        module[-1] |= _definite(stmt)


def uses(tree: ast.Module) -> set[str]:
    """Names the cell reads from before it (``"*"``: any name), statement by statement: a name it binds
    by plain assignment, ``def``, ``class`` or ``import`` before reading it (in the same block or one
    that encloses it, and outside any function body) is its own."""
    out: set[str] = set()
    _block(tree.body, [set()], out)
    return out


def _parse(src: str, transformer=None) -> Optional[ast.Module]:
    """The cell as Python, after IPython's own transforms (magics, ``!``); None if it does not parse (then
    it raises before running anything, so it reads nothing)."""
    try:
        if transformer is None:
            from IPython.core.inputtransformer2 import TransformerManager

            transformer = TransformerManager()
        code = transformer.transform_cell(src)
    except Exception:  # noqa: BLE001 - IPython missing or a transformer oddity: read it as plain Python
        code = src
    try:
        return ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


@dataclass(frozen=True)
class Teaching:
    """A lab's teaching cells and all its own code cells (normalised sources)."""

    cells: frozenset = frozenset()
    lab_cells: frozenset = frozenset()  # every code cell of the lab's notebook: their dynamic reads
    #                                     (e.g. a check cell's run_public(..., globals())) are the author's


def left_out(cells: list[str], teaching: Teaching) -> set[int]:
    """Indices of the cells grading leaves out: a teaching cell of the lab none of whose names a cell
    that runs reads."""
    candidates = {i for i, src in enumerate(cells) if _normal(src) in teaching.cells}
    if not candidates:
        return set()
    try:
        from IPython.core.inputtransformer2 import TransformerManager

        transformer = TransformerManager()  # one per notebook
    except Exception:  # noqa: BLE001 - IPython missing: cells are read as plain Python
        transformer = None
    trees = [_parse(src, transformer) for src in cells]
    bound = {i: binds(trees[i]) if trees[i] is not None else {_EVERYTHING} for i in candidates}
    read = [uses(t) if t is not None else set() for t in trees]
    for i, src in enumerate(cells):
        if _normal(src) in teaching.lab_cells:
            read[i].discard(_EVERYTHING)
    skip = {i for i in candidates if _EVERYTHING not in bound[i]}
    while True:  # a cell kept may read a name of another teaching cell: keep that one too
        needed: set[str] = set().union(*(read[i] for i in range(len(cells)) if i not in skip))
        keep = {i for i in skip if _EVERYTHING in needed or bound[i] & needed}
        if not keep:
            return skip
        skip -= keep


@lru_cache(maxsize=32)
def _read(path: str, mtime_ns: int) -> Teaching:
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    tagged, every = set(), set()
    for c in nb.get("cells", []):
        if c.get("cell_type") != "code":
            continue
        src = c.get("source", "")
        src = _normal("".join(src) if isinstance(src, list) else src)
        every.add(src)
        if TAG in (c.get("metadata", {}).get("tags") or []):
            tagged.add(src)
    return Teaching(frozenset(tagged), frozenset(every))


def teaching_sources(notebook: Path) -> Teaching:
    """The cells tagged ``teaching`` in a lab's own notebook (none if it is not there: every cell runs)."""
    try:
        return _read(str(notebook), Path(notebook).stat().st_mtime_ns)
    except (OSError, ValueError, AttributeError, TypeError):
        return Teaching()


def for_lab(lab, course_root: Path) -> Teaching:
    """The lab's teaching cells, from its instructor notebook, else its release: in the course given, else
    in the course the lab's package lies in (``<course>/labs/<id>/``: a self-check outside the course).
    Never raises: when the notebook cannot be found or read, no cell is left out."""
    from .labs import lab_folder

    try:
        roots = [Path(course_root)]
        home = lab_folder(lab)
        if home is not None and len(home.parents) > 1:
            roots.append(home.parents[1])
        for root in roots:
            for nb in (lab.model_solution(root), root / "assignments" / lab.id / f"{lab.notebook_name}.ipynb"):
                if nb.is_file():
                    return teaching_sources(nb)
    except (OSError, ValueError, TypeError, AttributeError):
        pass
    return Teaching()


MAX_ANALYSED = 1_000_000  # characters of code: a larger notebook runs every cell (the analysis is linear,
#                          but nobody's honest notebook is this large)


def without_teaching(cells: list[str], teaching: Teaching) -> list[str]:
    """``cells`` with the left-out teaching cells replaced by a comment (the cells keep their places).
    Whatever the cells hold, this never raises: when they cannot be analysed, every cell runs."""
    if not teaching.cells or sum(len(c) for c in cells) > MAX_ANALYSED:
        return list(cells)
    try:
        skip = left_out(cells, teaching)
    except (Exception, RecursionError, MemoryError):  # noqa: BLE001 - code too deep or odd to read: run it all
        skip = set()
    return [LEFT_OUT if i in skip else src for i, src in enumerate(cells)]
