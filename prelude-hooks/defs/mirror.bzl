"""Downloads through a mirror, with the same sha256.

Copy this file into your repository (e.g. as //build/antares/mirror.bzl) and
use the wrappers instead of the native rules:

    load("//build/antares:mirror.bzl", "mirrored_http_archive", "mirrored_http_file")

    mirrored_http_archive(
        name = "zlib",
        urls = ["https://zlib.net/zlib-1.3.1.tar.gz"],
        sha256 = "9a93b2b7dfdac77ceba5a558a580e74667dd6fede4585b91eefb60f03b72df23",
        strip_prefix = "zlib-1.3.1",
    )

With `[antares] mirror = https://mirror.corp/dl`, each URL
`https://zlib.net/zlib-1.3.1.tar.gz` is tried first as
`https://mirror.corp/dl/zlib.net/zlib-1.3.1.tar.gz`, the original after it.
The sha256 is kept, so a mirror cannot change what is built. Without the
setting the rules are unchanged.
"""

def mirror_urls(urls):
    """`urls` with their mirror spellings first (if a mirror is configured)."""
    prefix = read_config("antares", "mirror", "")
    if not prefix:
        return urls
    prefix = prefix.rstrip("/")
    mirrored = []
    for url in urls:
        scheme = url.find("://")
        rest = url[scheme + 3:] if scheme >= 0 else url
        mirrored.append(prefix + "/" + rest)
    return mirrored + urls

def _require_sha256(name, sha256):
    if not sha256:
        fail("{}: a mirrored download needs sha256, so the mirror cannot change the content".format(name))

def mirrored_http_archive(name, urls, sha256, **kwargs):
    _require_sha256(name, sha256)
    native.http_archive(name = name, urls = mirror_urls(urls), sha256 = sha256, **kwargs)

def mirrored_http_file(name, urls, sha256, **kwargs):
    _require_sha256(name, sha256)
    native.http_file(name = name, urls = mirror_urls(urls), sha256 = sha256, **kwargs)
