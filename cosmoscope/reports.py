"""Report notebooks: list them, run them with papermill, export them to HTML with nbconvert.

The notebooks ship inside the package (``cosmoscope/notebooks/``; the repository's top-level
``notebooks/`` holds the same files for people browsing the repository or binder). Each has a
cell tagged ``parameters``; :func:`run_report` injects new values after it, executes the notebook
top to bottom and writes the executed notebook beside its HTML export.

Kernel: by default the notebook runs in a kernel of *this* Python interpreter (the one running
cosmoscope), whatever kernels are installed, so a cron job gets the environment it was started
in; nothing is registered or written outside the output files. ``kernel="NAME"`` uses an
installed kernelspec instead, e.g. one registered for JupyterLab with
``python -m ipykernel install --sys-prefix --name cosmoscope``.

Examples
--------
>>> from cosmoscope.reports import list_notebooks, run_report
>>> [nb.name for nb in list_notebooks()]  # doctest: +SKIP
['explore', 'ingest', 'pipeline_preflight', 'validation_report']
>>> run_report("validation_report", {"mission": "COSMOS-7"}, out="validation.html")  # doctest: +SKIP

or from cron: ``cosmoscope report validation_report -p mission COSMOS-7 --out validation.html``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cosmoscope.errors import CosmoscopeError, InvalidArgumentError, UnknownNameError
from cosmoscope.notebook_display import (  # noqa: F401 - the notebooks import them from here
    ATTACHMENTS_ENV, ATTACHMENTS_URL_ENV, Table, setup_notebook, table, verdict)

#: Where the shipped notebooks live.
NOTEBOOK_DIR = Path(__file__).resolve().parent / "notebooks"
#: nbconvert templates: ``cosmoscope`` is JupyterLab's without the scripts it would fetch from CDNs.
TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"


class CheckFailed(CosmoscopeError):
    """Raised by a notebook's verdict cell when its check failed and a parameter asked for a
    non-zero exit (``fail_on_problems``, ``fail_on_nogo``)."""


class NotebookFailed(CosmoscopeError):
    """A cell of a report notebook raised; the executed notebook and its HTML show where."""

    def __init__(self, message: str, *, cell: int | None = None, cell_id: str | None = None,
                 ename: str | None = None, evalue: str | None = None, notebook: Path | None = None,
                 html: Path | None = None):
        super().__init__(message)
        self.cell, self.cell_id, self.ename, self.evalue = cell, cell_id, ename, evalue
        self.notebook, self.html = notebook, html


@dataclass(frozen=True)
class Parameter:
    """One entry of a notebook's ``parameters`` cell."""

    name: str
    type: str  # as annotated, e.g. "Optional[str]", "list[str]", "bool"; "None" when not annotated
    default: str  # Python source of the default
    help: str = ""


@dataclass(frozen=True)
class NotebookInfo:
    """A report notebook: its name, title, first paragraph and parameters."""

    name: str
    path: Path
    title: str
    description: str
    parameters: dict[str, Parameter] = field(default_factory=dict)


@dataclass
class ReportResult:
    """What :func:`run_report` wrote."""

    name: str
    notebook: Path
    html: Path | None
    parameters: dict[str, Any]
    seconds: float


# -- finding notebooks ---------------------------------------------------------------------

def notebook_names(directory: Path = NOTEBOOK_DIR) -> list[str]:
    """Names of the shipped notebooks (file names without ``.ipynb``)."""
    return sorted(p.stem for p in directory.glob("*.ipynb"))


def find_notebook(name: str | os.PathLike) -> Path:
    """The notebook called ``name`` (``validation_report`` or ``validation_report.ipynb``), or
    any ``.ipynb`` file given by its path."""
    text = os.fspath(name)
    if text.endswith(".ipynb") and (os.sep in text or os.path.exists(text)):
        path = Path(text)
        if not path.is_file():
            raise InvalidArgumentError(f"there is no notebook file {text}")
        return path
    stem = text[:-len(".ipynb")] if text.endswith(".ipynb") else text
    path = NOTEBOOK_DIR / f"{stem}.ipynb"
    if not path.is_file():
        raise UnknownNameError("report notebook", stem, notebook_names())
    return path


def notebook_info(name: str | os.PathLike) -> NotebookInfo:
    """Title, description and parameters of a notebook (read, not run)."""
    import nbformat

    path = find_notebook(name)
    nb = nbformat.read(path, as_version=4)
    title, description = path.stem, ""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            lines = [ln.strip() for ln in cell.source.strip().splitlines()]
            if lines and lines[0].startswith("#"):
                title = lines[0].lstrip("#").strip()
                lines = lines[1:]
            paragraph = []
            for ln in lines:
                if not ln and paragraph:
                    break
                if ln:
                    paragraph.append(ln)
            description = " ".join(paragraph).replace("**", "").replace("`", "")
            break
    return NotebookInfo(path.stem, path, title, description, _parameters(nb))


def list_notebooks() -> list[NotebookInfo]:
    """Every shipped notebook with its parameters."""
    return [notebook_info(n) for n in notebook_names()]


def _parameters(nb) -> dict[str, Parameter]:
    from papermill.translators import PythonTranslator

    cell = next((c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])), None)
    if cell is None:
        return {}
    return {p.name: Parameter(p.name, p.inferred_type_name, p.default, p.help)
            for p in PythonTranslator.inspect(cell)}


# -- parameters from the command line -------------------------------------------------------

_TRUE, _FALSE = {"true", "yes", "y", "on", "1"}, {"false", "no", "n", "off", "0"}


def parse_parameters(info: NotebookInfo, pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Typed values of ``-p KEY VALUE`` pairs, read by each parameter's annotation.

    ``bool`` takes true/false/yes/no/1/0; ``Optional[...]`` also ``none``; ``list[...]`` takes a
    JSON list (``'["a", "b"]'``) or one item per ``-p`` (repeat the key to add more); ``int`` and
    ``float`` numbers; anything else is text.

    >>> info = NotebookInfo("x", Path("x.ipynb"), "x", "", {"n": Parameter("n", "int", "3"),
    ...                     "paths": Parameter("paths", "list[str]", "[]")})
    >>> parse_parameters(info, [("n", "5"), ("paths", "/a"), ("paths", "/b")])
    {'n': 5, 'paths': ['/a', '/b']}
    """
    out: dict[str, Any] = {}
    for key, text in pairs:
        param = info.parameters.get(key)
        if param is None:
            raise UnknownNameError(f"parameter of {info.name}", key, info.parameters)
        value = _typed(param, text)
        if _is_list(param.type) and key in out and isinstance(out[key], list) and not text.lstrip().startswith("["):
            out[key] = [*out[key], *value]
        else:
            out[key] = value
    return out


def _is_list(type_name: str) -> bool:
    return type_name.replace("Optional[", "").lower().startswith(("list", "tuple"))


def _typed(param: Parameter, text: str) -> Any:
    t = param.type
    low = text.strip().lower()
    if "Optional" in t and low in ("none", "null"):
        return None
    bad = f"-p {param.name}: could not read {text!r} as {t}"
    core = t.replace("Optional[", "").rstrip("]") if t.startswith("Optional[") else t
    if _is_list(t):
        if text.lstrip().startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                raise InvalidArgumentError(f"{bad}: {exc}; write a JSON list like '[\"/data/a\", \"/data/b\"]' "
                                           f"or repeat -p {param.name} VALUE") from None
            if not isinstance(value, list):
                raise InvalidArgumentError(f"{bad}: a JSON list was expected")
            return value
        return [text]
    if core == "bool":
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise InvalidArgumentError(f"{bad}; write true or false")
    if core in ("int", "float"):
        try:
            return int(text.replace("_", "")) if core == "int" else float(text)
        except ValueError:
            raise InvalidArgumentError(f"{bad}; write a number, e.g. {param.default}") from None
    if core in ("str", "Path"):
        return text
    # Not annotated: papermill's own guess (a number, True/False, else text).
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return {"True": True, "False": False, "None": None}.get(text, text)


# -- running -------------------------------------------------------------------------------

def kernel_manager_class(kernel: str | None = None):
    """A jupyter_client kernel manager class for a report's kernel.

    With ``kernel=None`` its kernel is this interpreter (``sys.executable -m
    ipykernel_launcher``) and no installed kernelspec is needed; otherwise the named kernelspec
    is used. Either way the kernel's sockets are encrypted (CurveZMQ) when pyzmq supports it,
    since on a shared machine other users can reach its TCP ports.
    """
    import zmq
    from jupyter_client import AsyncKernelManager
    from traitlets import default

    class ReportKernelManager(AsyncKernelManager):
        @default("transport_encryption")
        def _encrypt(self):
            return "auto" if zmq.has("curve") else "disabled"

    if kernel is not None:
        return ReportKernelManager

    from ipykernel.kernelspec import RESOURCES, get_kernel_dict
    from jupyter_client.kernelspec import KernelSpec

    class ThisPythonKernelManager(ReportKernelManager):
        @property
        def kernel_spec(self):
            if self._kernel_spec is None:
                spec = {k: v for k, v in get_kernel_dict().items() if k in KernelSpec.class_trait_names()}
                self._kernel_spec = KernelSpec(resource_dir=RESOURCES, **spec)
            return self._kernel_spec

    return ThisPythonKernelManager


def attachments_dir(html: Path) -> Path:
    """Where the whole of each long table of a report goes: ``report_files/`` beside ``report.html``."""
    return html.with_name(html.stem + "_files")


def output_paths(name: str, out: str | os.PathLike | None) -> tuple[Path, Path]:
    """The HTML file and the executed notebook beside it: ``NAME.html`` in the current
    directory by default; ``--out report.html`` gives ``report.html`` and ``report.ipynb``."""
    html = Path(out) if out is not None else Path(f"{name}.html")
    if html.suffix.lower() == ".ipynb":
        raise InvalidArgumentError(f"--out names the HTML report ({html.with_suffix('.html')}); the executed "
                                   "notebook is written beside it with the suffix .ipynb")
    if html.suffix.lower() not in (".html", ".htm"):
        html = html.with_name(html.name + ".html")
    return html, html.with_suffix(".ipynb")


def run_report(name: str | os.PathLike, parameters: dict[str, Any] | None = None, *,
               out: str | os.PathLike | None = None, kernel: str | None = None, progress: bool = True,
               html: bool = True, no_input: bool = True, self_contained: bool = True,
               timeout: float | None = None, force: bool = False,
               cwd: str | os.PathLike | None = None, env: dict[str, str] | None = None) -> ReportResult:
    """Execute a report notebook with papermill and export it to HTML.

    Parameters
    ----------
    name
        A shipped notebook's name (see :func:`list_notebooks`) or the path of any notebook.
    parameters
        Values for the notebook's ``parameters`` cell; unknown names are refused.
    out
        The HTML file (default ``NAME.html``); the executed notebook goes beside it (``.ipynb``).
    kernel
        An installed kernelspec's name; default: this Python interpreter.
    html
        Also export HTML (False: the executed notebook only).
    no_input
        Leave the code cells out of the HTML (the default: a report is read for its results; the
        executed notebook beside it keeps the code).
    self_contained
        Put BokehJS into the report so its charts show without internet (adds about 3 MB);
        False loads it from cdn.bokeh.org when the page is opened. The notebooks read this as
        ``$COSMOSCOPE_BOKEH_RESOURCES``.
    timeout
        Longest a single cell may run, seconds (default: no limit).
    force
        Replace files of an earlier report of the same name (by default they are left alone and
        :class:`~cosmoscope.errors.InvalidArgumentError` says which are in the way).
    cwd
        Working directory of the kernel (default: the current one, so relative paths work).
    env
        Extra environment variables for the kernel (e.g. ``COSMOSCOPE_CATALOG``).

    Raises
    ------
    NotebookFailed
        A cell raised, ran longer than ``timeout``, or the kernel died. The executed notebook
        (and the HTML) are still written up to that cell, showing where.
    """
    import papermill as pm
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    info = notebook_info(name)
    parameters = dict(parameters or {})
    unknown = [k for k in parameters if k not in info.parameters]
    if unknown:
        raise UnknownNameError(f"parameter of {info.name}", unknown[0], info.parameters)
    html_path, nb_path = output_paths(info.name, out)
    files = attachments_dir(html_path)
    in_the_way = [p for p in ((nb_path, html_path, files) if html else (nb_path,)) if p.exists()]
    if in_the_way and not force:
        raise InvalidArgumentError(f"{', '.join(map(str, in_the_way))} already exist(s); choose another --out, or "
                                   "replace them with --force")
    if force and files.exists():
        import shutil

        shutil.rmtree(files)
    if kernel is not None:
        _check_kernel(kernel)
    nb_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    failure = None
    env = {**(env or {}), "COSMOSCOPE_BOKEH_RESOURCES": "inline" if self_contained else "cdn",
           ATTACHMENTS_ENV: str(files.resolve()), ATTACHMENTS_URL_ENV: files.name}
    with _environ(env):
        try:
            pm.execute_notebook(
                str(info.path), str(nb_path), parameters=parameters, kernel_name=kernel or "python3",
                progress_bar=progress, cwd=os.fspath(cwd) if cwd is not None else os.getcwd(),
                execution_timeout=timeout, start_timeout=120,
                kernel_manager_class=kernel_manager_class(kernel))
        except (PapermillExecutionError, CellTimeoutError, DeadKernelError) as exc:
            # papermill saved the notebook up to the failing cell, which _failed names.
            failure = exc
    if html and nb_path.exists():
        export_html(nb_path, html_path, no_input=no_input, offline=self_contained)
    seconds = time.perf_counter() - started
    if failure is not None:
        raise _failed(info, failure, nb_path, html_path if html and html_path.exists() else None, timeout)
    return ReportResult(info.name, nb_path, html_path if html else None, parameters, seconds)


def _check_kernel(kernel: str) -> None:
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec(kernel)
    except NoSuchKernel:
        names = KernelSpecManager().find_kernel_specs()
        raise UnknownNameError("kernel", kernel, names) from None


@contextlib.contextmanager
def _environ(extra: dict[str, str]):
    """Environment variables set while the kernel starts (it inherits them), then restored."""
    old = {k: os.environ.get(k) for k in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _failed(info: NotebookInfo, exc, nb_path: Path, html_path: Path | None,
            timeout: float | None) -> NotebookFailed:
    """Name the failing cell: its position in the executed notebook, its id, its first line."""
    import nbformat

    nb = nbformat.read(nb_path, as_version=4) if nb_path.exists() else nbformat.v4.new_notebook()
    code = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    # The cell showing an error (a timeout interrupts the kernel, which shows one too), else the
    # last cell papermill started (the kernel died while running it).
    started = [(i, c) for i, c in code if c.metadata.get("papermill", {}).get("start_time")]
    index, cell = next(((i, c) for i, c in code if any(o.get("output_type") == "error" for o in c.outputs)),
                       started[-1] if started else (-1, None))
    if hasattr(exc, "ename"):  # a cell raised
        error = f"{exc.ename}: {exc.evalue}"
    elif type(exc).__name__ == "CellTimeoutError":
        error = f"it ran longer than the timeout of {timeout:g} s"
    else:
        error = f"the kernel died ({str(exc).strip() or type(exc).__name__})"
    cell_id = cell.get("id") if cell is not None else None
    first = next((ln.strip() for ln in (cell.source if cell is not None else "").splitlines() if ln.strip()), "")
    named = [f"id {cell_id!r}"] if cell_id else []
    if cell is not None and cell.execution_count:
        named.append(f"In [{cell.execution_count}]")
    named.append(f"first line {first[:60]!r}")
    where = f"cell {index + 1} of {len(nb.cells)} ({', '.join(named)})" if cell is not None else "a cell"
    shown = html_path or (nb_path if nb_path.exists() else None)
    return NotebookFailed(f"{info.path.name} failed in {where}: {error}" + (f"; see {shown}" if shown else ""),
                          cell=index + 1 if cell is not None else None, cell_id=cell_id,
                          ename=getattr(exc, "ename", type(exc).__name__), evalue=getattr(exc, "evalue", str(exc)),
                          notebook=nb_path, html=html_path)


def export_html(notebook: str | os.PathLike, html: str | os.PathLike, *, no_input: bool = True,
                offline: bool = True) -> Path:
    """Write an executed notebook as one HTML page that opens without internet: JupyterLab's
    look, none of the scripts it would fetch from CDNs, and each widget as the static picture it
    offers beside itself (widgets would need their JavaScript from a CDN). With ``offline``
    False the charts' own loaders may still fetch from CDNs (``cosmoscope report --cdn``)."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(os.fspath(notebook), as_version=4)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if "application/vnd.jupyter.widget-view+json" in data:
                data.pop("application/vnd.jupyter.widget-view+json")
                if "text/html" in data:
                    data.pop("text/plain", None)  # the picture, not "VBox(children=...)"
    exporter = HTMLExporter(template_name="cosmoscope", extra_template_basedirs=[str(TEMPLATE_DIR)],
                            exclude_input=no_input, exclude_input_prompt=no_input)
    with warnings.catch_warnings():
        # holoviews leaves an empty display output after loading its extension: nothing is lost.
        warnings.filterwarnings("ignore", message="Your element with mimetype", category=UserWarning)
        body, _ = exporter.from_notebook_node(nb)
    if offline:
        # Panel's loader asks its CDN for the ES-module shim even when the notebook already holds
        # it inline (a harmless request online, a failed one offline): ask for nothing instead.
        body = re.sub(r'const js_urls = \["https://cdn\.holoviz\.org/[^"\]]*es-module-shims[^"\]]*"\];',
                      "const js_urls = [];", body)
    path = Path(html)
    path.write_text(body, encoding="utf-8")
    return path
