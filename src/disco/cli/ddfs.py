"""The `ddfs` command: DDFS's tags and blobs from the shell, as Disco's `ddfs` had them.

    ddfs push data:logs ./access.log        ddfs ls data:          ddfs blobs data:logs
    ddfs chunk data:words ./words.txt       ddfs xcat data:words   ddfs rm data:logs

Options before the command: `-M/--master URL` (default DISCO_MASTER), `-t/--token TOKEN`
(for every tag operation; default from the settings), `-s/--settings FILE` (a Disco settings
file). Exit status: 0 on success, 1 when DDFS refused or failed (the message on stderr) or
`exists` found nothing, 2 for a command used wrongly.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import sys
import tarfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Optional

import typer

app = typer.Typer(help="DDFS, Disco's distributed file system: tags and blobs.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
                  context_settings={"help_option_names": ["-h", "--help"]})


@dataclass
class Options:
    master: str | None
    token: str | None
    settings_file: str | None

    def ddfs(self) -> Any:
        from disco.ddfs import DDFS
        from disco.settings import DiscoSettings
        return DDFS(self.master, settings=DiscoSettings(filename=self.settings_file))


class Failed(Exception):
    """A command that did not do what was asked: its message goes to stderr, exit 1."""


def _options(ctx: typer.Context) -> Options:
    return ctx.ensure_object(Options)


@app.callback()
def main_options(
        ctx: typer.Context,
        master: Optional[str] = typer.Option(None, "--master", "-M",
                                             help="The master (default: DISCO_MASTER)."),
        token: Optional[str] = typer.Option(None, "--token", "-t",
                                            help="Token for the tags' read/write locks."),
        settings: Optional[str] = typer.Option(None, "--settings", "-s",
                                               help="A Disco settings file.")) -> None:
    ctx.obj = Options(master, token, settings)


def _run(action: Callable[[], Any]) -> None:
    """Run a command: Disco's errors become a message and exit status 1."""
    from disco.error import DiscoError
    try:
        action()
    except BrokenPipeError:  # `ddfs cat ... | head`
        raise typer.Exit(0) from None
    except (DiscoError, Failed, OSError) as exc:
        typer.echo(f"ddfs: {exc}", err=True)
        raise typer.Exit(1) from None


def _replica_args(args: Iterable[str]) -> list[list[str]]:
    """URL arguments (or, with none or `-`, lines of stdin): each one a whitespace-separated
    list of replicas of one blob."""
    args = list(args)
    if not args or args == ["-"]:
        args = [line for line in sys.stdin.read().splitlines() if line.strip()]
    return [arg.split() for arg in args if arg.split()]


def _blobs(ddfs: Any, items: Iterable[str], token: str | None) -> Iterator[list[str]]:
    """Replica lists: tags give the blobs reachable from them, other URLs themselves."""
    from disco.ddfs import istag
    for item in items:
        if "://" not in item and os.path.exists(item):
            yield [item]  # a local file, for cat and xcat
        elif istag(item):
            yield from ddfs.blobs(item, ignore_missing=False, token=token)
        else:
            yield item.split()


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


# ------------------------------------------------------------------ uploading

def _tar_members(path: str, compress: bool) -> Iterator[tuple[bytes, str]]:
    from disco.ddfs import DDFS
    with tarfile.open(path) as tar:
        for member in tar:
            extracted = tar.extractfile(member) if member.isfile() else None
            if extracted is None:
                continue
            data = extracted.read()
            name = DDFS.safe_name(member.name)
            if compress:
                data, name = gzip.compress(data, compresslevel=2), f"{name}_gz"
            yield data, name


@app.command()
def push(ctx: typer.Context, tag: str, files: list[str],
         recursive: bool = typer.Option(False, "--recursive", "-r",
                                        help="Push the files in directories too."),
         tarballs: bool = typer.Option(False, "--tarballs", "-x",
                                       help="Push the files inside tar archives."),
         compress: bool = typer.Option(False, "--compress", "-z",
                                       help="Gzip the files taken from tar archives."),
         replicas: Optional[int] = typer.Option(None, "--replicas", "-n",
                                                help="Copies of each blob."),
         update: bool = typer.Option(False, "--update", "-u",
                                     help="Skip blobs whose names the tag has already."),
         delayed: bool = typer.Option(False, "--delayed", help="Let the master batch the tag update.")
         ) -> None:
    """Upload files as blobs and tag them."""
    opts = _options(ctx)

    def run() -> None:
        sources: list[Any] = []
        for path in files:
            if tarballs:
                sources += [(io.BytesIO(data), name) for data, name in _tar_members(path, compress)]
            elif os.path.isdir(path):
                if not recursive:
                    raise Failed(f"{path} is a directory (use -r to push what is in it)")
                sources += [os.path.join(top, f) for top, _dirs, names in os.walk(path)
                            for f in sorted(names)]
            elif os.path.isfile(path):
                sources.append(path)
            else:
                raise Failed(f"{path}: no such file")
        _locations, blobs = opts.ddfs().push(tag, sources, replicas=replicas, update=update,
                                             delayed=delayed, token=opts.token)
        for replicas_ in blobs:
            typer.echo("\t".join(replicas_))
    _run(run)


@app.command()
def chunk(ctx: typer.Context, tag: str, urls: list[str],
          replicas: Optional[int] = typer.Option(None, "--replicas", "-n", help="Copies of each blob."),
          size: int = typer.Option(64 << 20, "--size", "-S", help="Bytes of records per blob."),
          max_record: int = typer.Option(1 << 20, "--max-record-size", "-Z",
                                         help="Largest record allowed, in bytes."),
          update: bool = typer.Option(False, "--update", "-u",
                                      help="Skip blobs whose names the tag has already."),
          delayed: bool = typer.Option(False, "--delayed", help="Let the master batch the tag update.")
          ) -> None:
    """Store the lines of urls as records in blobs, and tag them.

    Local files are given as ./file. Blobs hold about --size bytes of records each, in
    Disco's record format (read them back with xcat)."""
    opts = _options(ctx)

    def run() -> None:
        ddfs = opts.ddfs()
        sources = list(_blobs(ddfs, urls, opts.token))
        _locations, blobs = ddfs.chunk(tag, sources, replicas=replicas, chunk_size=size,
                                       max_record_size=max_record, update=update,
                                       delayed=delayed, token=opts.token)
        for replicas_ in blobs:
            typer.echo("created: " + "\t".join(replicas_))
    _run(run)


# ------------------------------------------------------------------ reading

@app.command("ls")
def ls(ctx: typer.Context, prefixes: Optional[list[str]] = typer.Argument(None),
       recursive: bool = typer.Option(False, "--recursive", "-r",
                                      help="List the blobs reachable from each tag too.")) -> None:
    """List the tags whose names start with the prefixes (all tags without one)."""
    opts = _options(ctx)

    def run() -> None:
        ddfs = opts.ddfs()
        for prefix in prefixes or [""]:
            for name in ddfs.list(prefix):
                typer.echo(name)
                if recursive:
                    for replicas in ddfs.blobs(name, token=opts.token):
                        typer.echo("\t" + "\t".join(replicas))
    _run(run)


@app.command()
def blobs(ctx: typer.Context, tags: list[str]) -> None:
    """List the blobs reachable from the tags, one line of replicas each."""
    opts = _options(ctx)

    def run() -> None:
        ddfs = opts.ddfs()
        for tag in tags:
            for replicas in ddfs.blobs(tag, ignore_missing=False, token=opts.token):
                typer.echo("\t".join(replicas))
    _run(run)


@app.command()
def urls(ctx: typer.Context, tags: list[str]) -> None:
    """List the urls the tags hold (blobs and tags), one line of replicas each."""
    opts = _options(ctx)

    def run() -> None:
        ddfs = opts.ddfs()
        for tag in tags:
            for replicas in ddfs.urls(tag, token=opts.token):
                typer.echo("\t".join(replicas))
    _run(run)


@app.command()
def cat(ctx: typer.Context, urls_: list[str] = typer.Argument(..., metavar="URLS...")) -> None:
    """Print the contents of urls and of the blobs reachable from tags."""
    opts = _options(ctx)

    def run() -> None:
        from disco.schemes import open_location
        out = sys.stdout.buffer
        for replicas in _blobs(opts.ddfs(), urls_, opts.token):
            error: Exception | None = None
            for url in replicas:
                try:
                    stream, _size, _url = open_location(url)
                except Exception as exc:  # noqa: BLE001 - try the next replica
                    error = exc
                    continue
                try:
                    while data := stream.read(1 << 16):
                        out.write(data)
                finally:
                    stream.close()
                break
            else:
                raise Failed(f"no replica of {' '.join(replicas)} could be read: {error}")
        out.flush()
    _run(run)


@app.command()
def xcat(ctx: typer.Context, urls_: list[str] = typer.Argument(..., metavar="URLS...")) -> None:
    """Print the records of urls and of the blobs reachable from tags.

    Records are in Disco's record format; each is printed on a line, the fields of
    key-value pairs separated by a tab."""
    opts = _options(ctx)

    def run() -> None:
        from disco.core import result_iterator
        from disco.util import iterify
        from disco.worker.task_io import chain_reader
        sources = list(_blobs(opts.ddfs(), urls_, opts.token))
        for record in result_iterator(sources, reader=chain_reader):
            fields = record if isinstance(record, tuple) else iterify(record)
            typer.echo("\t".join(_text(f) for f in fields).rstrip())
    _run(run)


@app.command()
def find(ctx: typer.Context, tags: list[str],
         warn_missing: bool = typer.Option(False, "--warn-missing", "-w",
                                           help="Tell about tags referred to but missing.")) -> None:
    """Walk the tags reachable from the tags, printing each path."""
    opts = _options(ctx)

    def run() -> None:
        ddfs = opts.ddfs()
        for tag in tags:
            for path, subtags, _blobs_ in ddfs.walk(tag, token=opts.token):
                if subtags == () and _blobs_ == () and warn_missing:
                    typer.echo("Tag not found: " + "\t".join(path))
                else:
                    typer.echo("\t".join(path))
    _run(run)


@app.command()
def get(ctx: typer.Context, tag: str) -> None:
    """Print the tag as JSON."""
    opts = _options(ctx)
    _run(lambda: typer.echo(json.dumps(opts.ddfs().get(tag, token=opts.token), indent=1)))


@app.command()
def stat(ctx: typer.Context, tags: list[str]) -> None:
    """Print, for each tag: name, id, last modification, number of urls, user attributes."""
    opts = _options(ctx)

    def run() -> None:
        ddfs = opts.ddfs()
        for tag in tags:
            info = ddfs.get(tag, token=opts.token)
            typer.echo("\t".join([tag, info["id"], info["last-modified"],
                                  str(len(info["urls"])), json.dumps(info["user-data"])]))
    _run(run)


@app.command()
def exists(ctx: typer.Context, tag: str) -> None:
    """Print True (exit 0) if the tag exists, else False (exit 1)."""
    opts = _options(ctx)
    found: list[bool] = []
    _run(lambda: found.append(opts.ddfs().exists(tag)))
    typer.echo(str(found[0]))
    if not found[0]:
        raise typer.Exit(1)


@app.command()
def attrs(ctx: typer.Context, tag: str) -> None:
    """Print the tag's user attributes, `name<TAB>value` a line."""
    opts = _options(ctx)

    def run() -> None:
        for name, value in opts.ddfs().attrs(tag, token=opts.token).items():
            typer.echo(f"{name}\t{value}")
    _run(run)


@app.command("getattr")
def getattr_(ctx: typer.Context, tag: str, attr: str) -> None:
    """Print an attribute of the tag (ddfs:read-token and ddfs:write-token too)."""
    opts = _options(ctx)

    def run() -> None:
        value = opts.ddfs().getattr(tag, attr, token=opts.token)
        typer.echo("" if value is None else value if isinstance(value, str) else json.dumps(value))
    _run(run)


# ------------------------------------------------------------------ changing tags

@app.command()
def tag(ctx: typer.Context, tag_: str = typer.Argument(..., metavar="TAG"),
        urls_: Optional[list[str]] = typer.Argument(None, metavar="URLS..."),
        update: bool = typer.Option(False, "--update", "-u",
                                    help="Skip blobs and tags the tag has already."),
        delayed: bool = typer.Option(False, "--delayed", help="Let the master batch the update.")
        ) -> None:
    """Add urls to the tag (creating it).

    A url argument may list replicas separated by spaces; without urls, they are read
    from stdin, one blob a line."""
    opts = _options(ctx)
    _run(lambda: opts.ddfs().tag(tag_, _replica_args(urls_ or []), token=opts.token,
                                 update=update, delayed=delayed))


@app.command()
def put(ctx: typer.Context, tag_: str = typer.Argument(..., metavar="TAG"),
        urls_: Optional[list[str]] = typer.Argument(None, metavar="URLS...")) -> None:
    """Replace the tag's urls (creating it); urls as for `tag`."""
    opts = _options(ctx)
    _run(lambda: opts.ddfs().put(tag_, _replica_args(urls_ or []), token=opts.token))


@app.command()
def touch(ctx: typer.Context, tags: list[str]) -> None:
    """Create the tags if they do not exist (an existing tag is left as it is)."""
    opts = _options(ctx)

    def run() -> None:
        ddfs = opts.ddfs()
        for tag_ in tags:
            ddfs.tag(tag_, [], token=opts.token)
    _run(run)


@app.command()
def cp(ctx: typer.Context, source: str, target: str) -> None:
    """Make the target tag hold the urls of the source tag (replacing its own)."""
    opts = _options(ctx)

    def run() -> None:
        ddfs = opts.ddfs()
        ddfs.put(target, ddfs.urls(source, token=opts.token), token=opts.token)
    _run(run)


@app.command()
def rm(ctx: typer.Context, tags: list[str]) -> None:
    """Delete the tags (their blobs go once no tag refers to them)."""
    opts = _options(ctx)

    def run() -> None:
        ddfs = opts.ddfs()
        for tag_ in tags:
            ddfs.delete(tag_, token=opts.token)
            typer.echo(f"deleted {tag_}")
    _run(run)


@app.command("setattr")
def setattr_(ctx: typer.Context, tag_: str = typer.Argument(..., metavar="TAG"),
             attr: str = typer.Argument(...), value: str = typer.Argument(...)) -> None:
    """Set an attribute of the tag."""
    opts = _options(ctx)
    _run(lambda: opts.ddfs().setattr(tag_, attr, value, token=opts.token))


@app.command("delattr")
def delattr_(ctx: typer.Context, tag_: str = typer.Argument(..., metavar="TAG"),
             attr: str = typer.Argument(...)) -> None:
    """Delete an attribute of the tag."""
    opts = _options(ctx)
    _run(lambda: opts.ddfs().delattr(tag_, attr, token=opts.token))


@app.command()
def chtok(ctx: typer.Context, tag_: str = typer.Argument(..., metavar="TAG"),
          new_token: str = typer.Argument(..., metavar="NEW_TOKEN"),
          read: bool = typer.Option(False, "--read", "-r", help="Change the read token."),
          write: bool = typer.Option(False, "--write", "-w", help="Change the write token.")
          ) -> None:
    """Change the tag's read and/or write token.

    Both change when neither -r nor -w is given; -t gives the token that allows the
    change."""
    opts = _options(ctx)
    both = not read and not write
    _run(lambda: opts.ddfs().chtok(tag_, new_token, read=read or both, write=write or both,
                                   token=opts.token))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
