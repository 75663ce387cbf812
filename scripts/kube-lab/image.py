#!/usr/bin/env python3
"""Container images for the lab cluster without a registry or a container builder.

  image.py layer OUT.tar [SRC:DEST[:MODE] ...] [--link DEST=TARGET ...] [--dir DEST ...]
      one filesystem layer (a plain tar) from files of this machine (mode 0755 unless MODE,
      octal, is given), symlinks and directories
  image.py assemble OUT.tar NAME:TAG CONFIG_JSON LAYER.tar [LAYER.tar ...]
      an image tarball in `docker save` layout (manifest.json, the config blob, <diff-id>/layer.tar),
      which `ctr images import` loads into containerd; CONFIG_JSON is the runtime config
      (Entrypoint, Cmd, Env, WorkingDir, ...). Layers are stored uncompressed.

Timestamps are fixed, so the same inputs give the same image id (start.sh skips an import it has done).
"""
import hashlib
import io
import json
import sys
import tarfile

EPOCH = "1970-01-01T00:00:00Z"


def digest_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return "sha256:" + h.hexdigest()


def layer(out, specs):
    files, links, dirs = [], [], []
    items = iter(specs)
    for spec in items:
        if spec == "--link":
            dest, target = next(items).split("=", 1)
            links.append((dest.strip("/"), target))
        elif spec == "--dir":
            dirs.append(next(items).strip("/"))
        else:
            src, dest = spec.split(":", 1)
            dest, _, mode = dest.partition(":")
            files.append((src, dest.strip("/"), int(mode, 8) if mode else 0o755))
    made = set()
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        def parents(path):
            parts = path.split("/")
            for n in range(1, len(parts) + 1):
                d = "/".join(parts[:n])
                if d and d not in made:
                    made.add(d)
                    info = tarfile.TarInfo(d)
                    info.type = tarfile.DIRTYPE
                    info.mode = 0o1777 if d == "tmp" else 0o755
                    tar.addfile(info)
        for d in dirs:
            parents(d)
        for src, dest, mode in files:
            if "/" in dest:
                parents(dest.rsplit("/", 1)[0])
            with open(src, "rb") as f:
                data = f.read()
            info = tarfile.TarInfo(dest)
            info.size = len(data)
            info.mode = mode
            tar.addfile(info, io.BytesIO(data))
        for dest, target in links:
            if "/" in dest:
                parents(dest.rsplit("/", 1)[0])
            info = tarfile.TarInfo(dest)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)


def assemble(out, ref, config_json, layers):
    diff_ids = [digest_of(p) for p in layers]
    config = json.dumps({
        "architecture": "amd64",
        "os": "linux",
        "created": EPOCH,
        "config": json.loads(config_json),
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": EPOCH, "created_by": "scripts/kube-lab/image.py"} for _ in layers],
    }, sort_keys=True).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    layer_names = [d.split(":", 1)[1] + "/layer.tar" for d in diff_ids]
    manifest = json.dumps([{"Config": config_name, "RepoTags": [ref], "Layers": layer_names}]).encode()
    with tarfile.open(out, "w") as tar:
        for name, path in zip(layer_names, layers):
            tar.add(path, arcname=name)
        for name, data in ((config_name, config), ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    print(config_name[:-5])


def main(argv):
    if len(argv) >= 2 and argv[0] == "layer":
        layer(argv[1], argv[2:])
    elif len(argv) >= 5 and argv[0] == "assemble":
        assemble(argv[1], argv[2], argv[3], argv[4:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
