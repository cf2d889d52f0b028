"""Inputs of caption_formats.sh: one image of every decoded kind (JPEG, PNG, WebP lossy/
lossless/alpha/animated, GIF palette/transparent/interlaced/animated, BMP 1/4/8/16/24/32-bit
and RLE, TIFF gray/RGB/palette/CMYK/16-bit/tiled/LZW/JPEG/multi-page) as
  OUT/dir/       a folder
  OUT/list.txt   a list file, KEY<TAB>PATH<TAB>META (META a JSON object or plain text)
  OUT/shard.tar  a WebDataset shard: KEY.<ext> + KEY.json + KEY.txt (the metadata members
                 placed before the image for half of the samples, after it for the others)
and OUT/expected.json: for every key, Pillow's size of the image (Image.open().convert('RGB')),
its size after ImageOps.exif_transpose (three images carry EXIF orientation 6), and the
"meta" object --keep-meta must write for it.
usage: /usr/bin/python3 make_formats_data.py OUT"""
import io
import json
import os
import shutil
import sys
import tarfile
import tempfile

from PIL import Image, ImageOps

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "image"))
import make_formats as mf  # noqa: E402
import make_variants as mv  # noqa: E402

PICK = ["lossy.webp", "lossless.webp", "alpha_lossy.webp", "anim.webp", "palette.gif",
        "transparent.gif", "interlaced.gif", "anim.gif", "frame_outside.gif", "bilevel.bmp",
        "pal4.bmp", "palette.bmp", "rgb555.bmp", "rgb.bmp", "bgra32_v4.bmp", "rle8.bmp",
        "rle4.bmp", "gray.tif", "rgb_tiff_lzw.tif", "rgb_jpeg.tif", "palette.tif", "cmyk.tif",
        "gray16.tif", "rgb16.tif", "rgb_tiled.tif", "multipage.tif", "bilevel_g4.tif"]

out = sys.argv[1]
shutil.rmtree(out, ignore_errors=True)
os.makedirs(os.path.join(out, "dir"))
tmp = tempfile.mkdtemp()
made = {os.path.basename(p): p for p in mf.make_formats(tmp, size=(300, 200))}
base = Image.open(mv.PHOTO_DIR + "/bluebells_clipped.jpg").convert("RGB").resize((300, 200))
for name, fmt in (("photo.jpg", "JPEG"), ("photo.png", "PNG")):
    p = os.path.join(tmp, name)
    base.save(p, fmt)
    made[name] = p
# EXIF orientation 6 (rotate 90 clockwise): sideways unless --exif-transpose; a TIFF with the
# same Orientation tag is upright either way (Pillow's TIFF loader applies it)
ex = Image.Exif()
ex[0x0112] = 6
for name, fmt in (("rotated.jpg", "JPEG"), ("rotated.webp", "WEBP"), ("rotated.tif", "TIFF")):
    p = os.path.join(tmp, name)
    base.save(p, fmt, exif=ex.tobytes())
    made[name] = p
files = ["photo.jpg", "photo.png", "rotated.jpg", "rotated.webp", "rotated.tif"] + PICK

expected = {}
list_lines = []
tar = tarfile.open(os.path.join(out, "shard.tar"), "w", format=tarfile.USTAR_FORMAT)


def add_member(name, data):
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    tar.addfile(ti, io.BytesIO(data))


for i, f in enumerate(files):
    stem, ext = os.path.splitext(f)
    key = "%s_%s" % (stem, ext[1:])
    with open(made[f], "rb") as fh:
        data = fh.read()
    size = list(Image.open(made[f]).convert("RGB").size)
    # upright size: ImageOps.exif_transpose, except TIFF (already upright when loaded)
    size_exif = size if f.endswith(".tif") else list(ImageOps.exif_transpose(Image.open(made[f])).size)
    # folder
    with open(os.path.join(out, "dir", key + ext), "wb") as fh:
        fh.write(data)
    expected["dir/" + key] = {"size": size, "size_exif": size_exif}
    # list file: a JSON object, plain text (with a non-ASCII character), or no third column
    lkey = "list_" + key
    if i % 3 == 0:
        col = json.dumps({"id": i, "tags": ["a", "b"], "note": "caf\u00e9"}, ensure_ascii=False)
        meta = {"id": i, "tags": ["a", "b"], "note": "caf\u00e9"}
    elif i % 3 == 1:
        col = "plain text caption \u00fcber %d" % i
        meta = {"source_text": col}
    else:
        col = None
        meta = {}
    list_lines.append("\t".join([lkey, os.path.join("dir", key + ext)] + ([col] if col else [])))
    expected["list/" + lkey] = {"size": size, "size_exif": size_exif, "meta": meta}
    # shard: json + txt members before or after the image; one sample with invalid UTF-8
    # in its txt, one with a .json that is not an object, one without metadata, one with
    # a .json above the size limit
    skey = "s%03d" % i
    js = {"url": "https://example.com/%d%s" % (i, ext), "width": size[0], "i": i}
    txt = ("alt text %d" % i).encode()
    smeta = dict(js, source_text=txt.decode())
    members = [(skey + ".json", json.dumps(js).encode()), (skey + ".txt", txt)]
    if i == 4:
        members[1] = (skey + ".txt", b"bad \xff\xfe utf8")
        smeta["source_text"] = "bad \ufffd\ufffd utf8"
    if i == 5:
        members[0] = (skey + ".json", b"[1, 2, 3]")
        smeta = {"source_text": txt.decode(), "meta_error": None}   # message checked loosely
    if i == 6:
        members, smeta = [], {}
    if i == 7:      # above formats.sh's --max-meta-kb 1: not read, meta_error says so
        members[0] = (skey + ".json", json.dumps(dict(js, pad="x" * 2000)).encode())
        smeta = {"source_text": txt.decode(), "meta_error": None}
    img = (skey + ext, data)
    for name, blob in ([img] + members if i % 2 else members + [img]):
        add_member(name, blob)
    expected["shard/" + skey] = {"size": size, "size_exif": size_exif, "meta": smeta}
tar.close()
with open(os.path.join(out, "list.txt"), "w", encoding="utf-8") as fh:
    fh.write("\n".join(list_lines) + "\n")
with open(os.path.join(out, "expected.json"), "w") as fh:
    json.dump(expected, fh, indent=1, ensure_ascii=False)
shutil.rmtree(tmp)
print("%d images of %d kinds in a folder, a list and a shard" % (len(files), len(files)))
