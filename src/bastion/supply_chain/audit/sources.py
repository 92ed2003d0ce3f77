"""The sources, sanitiser-free builders and entry points that `bastion.supply_chain.audit.taint`
knows: which names and calls bring data in from outside the program, which name files shipped
with a package, and which decorators make a function's parameters user input."""

from __future__ import annotations

__all__ = [
    "ARG_PARSERS",
    "BUNDLED_CALLS",
    "ENTRY_DECORATORS",
    "PATH_BUILDERS",
    "REQUEST_TYPES",
    "SOURCE_CALLS",
    "SOURCE_MODULES",
    "SOURCE_NAMES",
]

#: Names whose value (or any item or attribute of it) comes from outside -> description.
SOURCE_NAMES = {
    "sys.argv": "the command line (sys.argv)",
    "sys.stdin": "standard input",
    "os.environ": "the environment (os.environ)",
    "os.environb": "the environment (os.environb)",
    "flask.request": "an HTTP request (flask.request)",
}
#: Calls whose result comes from outside -> description.
SOURCE_CALLS = {
    "input": "input()",
    "builtins.input": "input()",
    "os.getenv": "the environment (os.getenv)",
    "os.getenvb": "the environment (os.getenvb)",
    "fileinput.input": "fileinput.input()",
    "urllib.request.urlopen": "a download (urllib.request.urlopen)",
    "urllib.request.urlretrieve": "a download (urllib.request.urlretrieve)",
    "huggingface_hub.hf_hub_download": "a download (hf_hub_download)",
    "huggingface_hub.snapshot_download": "a download (snapshot_download)",
    "torch.hub.download_url_to_file": "a download (torch.hub.download_url_to_file)",
    "keras.utils.get_file": "a download (keras.utils.get_file)",
    "tensorflow.keras.utils.get_file": "a download (keras.utils.get_file)",
    "wget.download": "a download (wget.download)",
    "gdown.download": "a download (gdown.download)",
}
SOURCE_MODULES = {"requests": "a download (requests)", "httpx": "a download (httpx)"}
#: Method names whose call parses the command line.
ARG_PARSERS = frozenset({"parse_args", "parse_known_args", "parse_intermixed_args"})
#: Calls that name a file shipped with the package.
BUNDLED_CALLS = frozenset(
    {
        "importlib.resources.files",
        "importlib.resources.path",
        "importlib_resources.files",
        "pkg_resources.resource_filename",
        "pkgutil.get_data",
    }
)
#: Decorator attribute names that make a function an entry point whose parameters the outside
#: world fills: click and typer commands and options, Flask/FastAPI routes.
ENTRY_DECORATORS = frozenset(
    {"command", "group", "option", "argument", "route", "get", "post", "put", "patch", "delete"}
)
#: Annotations (FastAPI/Starlette) that make a parameter request data.
REQUEST_TYPES = ("Request", "UploadFile", "File", "Form", "Body", "Query")
#: Calls whose result is built from their inputs (paths, strings, file objects).
PATH_BUILDERS = frozenset(
    {"str", "bytes", "open", "io.open", "io.BytesIO", "pathlib.Path", "pathlib.PurePath",
     "gzip.open", "bz2.open", "lzma.open", "zipfile.ZipFile", "tarfile.open", "format"}
)  # fmt: skip
