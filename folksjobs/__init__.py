from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("folksjobs")
except PackageNotFoundError:  # a source tree run without `pip install`
    __version__ = "0+unknown"

# The release's name where a "+" cannot go: the image tag, the setup Job's name
# (deploy/k8s), and the default WORKER_BUILD_ID. Same string in all three, so a worker's
# deployment version names the image it runs.
BUILD_ID = __version__.replace("+", "-")
