from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("folksjobs")
except PackageNotFoundError:  # a source tree run without `pip install`
    __version__ = "0+unknown"
