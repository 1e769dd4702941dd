"""One declarative record per dataset: where its files come from and how they are laid out.

Remote artifacts are data. Each :class:`DatasetRecord` lists its :class:`Resource`
files (URLs with mirrors, file name, size, checksums, licence) and how each one enters
the dataset folder (:class:`Resource` ``dest`` / ``root`` / ``include``). ``fetch-data``,
``--list``, the error messages and the tests all read these records; a manifest
(``--manifest``) overrides URLs and checksums but never the layout.

Facts (URLs, sizes, checksums, layouts) are from ``shared/spec/datasets.md``, which cites
torchvision, TFDS, dm_nevis, disent, the DVE and RealBlur repositories and the reference
code (linusericsson/ssl-invariances). A checksum is recorded here only when a source gives
it; for the others sslinv records the sha256 of the first download and checks later
downloads against it (see :mod:`sslinv.fetch.install`).

Layout steps, per resource:

- a plain file (``extract=False``) is placed at ``dest`` (default: its file name);
- a wrapper (``inner``): the archive of that name inside the download is taken out and
  checked against its own recorded hashes, then unpacked as below;
- an archive (zip or tar, type detected from its bytes) is unpacked so that the folder
  ``root`` inside it lands at ``dest`` inside the dataset folder, keeping only members
  whose path below ``root`` matches one of the ``include`` patterns (fnmatch; ``*``
  also matches ``/``; empty = everything). ``root`` is ``""`` (the archive's top),
  a fixed path (``"coil-100"``), ``"*"`` (strip one top folder, whatever its name), or
  ``"find:PATTERN"``: the shallowest folder ``D`` such that ``D/PATTERN`` exists, for
  archives whose top folder name is not documented.

Every record's steps produce exactly the tree its loader (``sslinv.data.<module>``) and
the reference read; the loader's ``verify`` checks it before the folder gets its name.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sslinv.registry import Registry, fold

__all__ = ["DATASETS", "DatasetRecord", "Resource", "gdrive", "lookup"]


def gdrive(file_id: str) -> str:
    """The download URL of a Google Drive file id (its confirmation page is handled)."""
    return f"https://drive.google.com/uc?export=download&id={file_id}"


@dataclass(frozen=True)
class Resource:
    """One file of a dataset and how it enters the dataset folder."""

    filename: str | None  # None: the name is not documented (taken from the URL or --from)
    urls: tuple[str, ...] = ()  # official first, then mirrors
    size: int | None = None  # bytes, when a source gives it (informational)
    sha256: str | None = None
    md5: str | None = None
    sha1: str | None = None
    extract: bool = True  # an archive to unpack, else a plain file to place
    dest: str = ""  # archives: folder under the dataset folder; files: path (default filename)
    root: str = ""  # archive folder that lands at dest: "", "a/b", "*" or "find:PATTERN"
    include: tuple[str, ...] = ()  # fnmatch patterns below root; () keeps everything
    source: str = ""  # where the facts come from
    # A download that wraps the real archive (CaltechDATA's zip around the original
    # tarball): the file of this name inside it is taken out, checked against these
    # hashes, and unpacked by the steps above.
    inner: str | None = None
    inner_sha256: str | None = None
    inner_md5: str | None = None

    @property
    def inner_checksums(self) -> dict[str, str]:
        return {k: v for k, v in (("sha256", self.inner_sha256), ("md5", self.inner_md5)) if v}

    @property
    def checksums(self) -> dict[str, str]:
        return {k: v for k, v in (("sha256", self.sha256), ("md5", self.md5), ("sha1", self.sha1)) if v}

    @property
    def label(self) -> str:
        return self.filename or "the archive"


@dataclass(frozen=True)
class DatasetRecord:
    """A dataset as ``fetch-data`` knows it. ``name`` is what the user types (any case;
    also the loader module's name); ``module`` is ``sslinv.data.<module>`` (``DIRNAME``,
    ``verify``); ``folder`` the folder under the data root when it is not ``name``."""

    name: str
    module: str
    title: str
    licence: str
    homepage: str
    resources: tuple[Resource, ...]
    manual: str | None = None  # why and how it must be downloaded by hand (no public URL)
    fallback: str = ""  # what to do when the automatic download fails
    installer: str = "layout"  # "layout" (the resource steps) or "imagenet"
    managed: tuple[str, ...] = ()  # the entries of the folder sslinv manages; () = all of it
    size_note: str | None = None  # an approximate size when the bytes are not known
    notes: tuple[str, ...] = field(default=())
    folder: str | None = None  # the folder under the data root, when it is not the name
    aliases: tuple[str, ...] = ()  # other names accepted on the command line

    @property
    def dirname(self) -> str:
        return self.folder or self.name

    @property
    def size(self) -> int | None:
        """Total bytes of the downloads, when every size is known."""
        sizes = [r.size for r in self.resources]
        return sum(sizes) if sizes and all(s is not None for s in sizes) else None  # type: ignore[misc]

    @property
    def known_size(self) -> int:
        """Total bytes of the downloads whose size is known (a lower bound)."""
        return sum(r.size or 0 for r in self.resources)

    @property
    def automatic(self) -> bool:
        return self.manual is None and all(r.urls for r in self.resources)


DATASETS: Registry[DatasetRecord] = Registry("dataset", hint="See them with: sslinv fetch-data --list")


def _add(record: DatasetRecord) -> None:
    # The folder and the loader module's name are accepted too (``coil100``, ``w300``).
    spellings = {fold(a): a for a in (record.dirname, record.module, *record.aliases)}
    spellings.pop(fold(record.name), None)
    DATASETS.register(record.name, record, aliases=spellings.values())


def lookup(name: str) -> DatasetRecord:
    """A record by name in any case (``-``/``_`` ignored), by alias or loader module name."""
    return DATASETS.lookup(name)


# ------------------------------------------------------------------------- statistics

_add(DatasetRecord(
    name="imagenet",
    module="imagenet",
    title="ILSVRC2012 validation set (50,000 images, 1,000 classes): the statistics pool",
    licence="ImageNet terms of access: non-commercial research and education only",
    homepage="https://image-net.org/",
    resources=(
        Resource(
            "ILSVRC2012_img_val.tar", size=6_744_924_160,
            md5="29b22e2961454d5413ddabcf34fc5622",
            sha256="c7e06a6c0baccf06d8dbeb6577d71efff84673a5dbdd50633ab44f8ea0456ae0",
            source="torchvision imagenet.py ARCHIVE_META (md5), prototype imagenet.py (sha256)",
        ),
        Resource(
            "ILSVRC2012_devkit_t12.tar.gz",
            md5="fa75699e90414af021442c21a62c3abf",
            sha256="b59243268c0d266621fd587d2018f69e906fb22875aca0e295b48cafaa927953",
            source="torchvision imagenet.py ARCHIVE_META (md5), prototype imagenet.py (sha256)",
        ),
    ),
    manual=(
        "ImageNet needs a registered account. Log in at https://image-net.org/, accept the "
        "terms, and download from the ILSVRC2012 page: ILSVRC2012_img_val.tar (6.7 GB; "
        "https://image-net.org/data/ILSVRC/2012/ILSVRC2012_img_val.tar) and "
        "ILSVRC2012_devkit_t12.tar.gz (2.5 MB; "
        "https://image-net.org/data/ILSVRC/2012/ILSVRC2012_devkit_t12.tar.gz)."
    ),
    installer="imagenet",
    managed=("val",),  # imagenet/train (for pretraining) and the archives may live there too
    notes=("val/ is sorted into <wnid>/ folders with the devkit's ground truth (as torchvision does).",),
))

# -------------------------------------------------------------------------- downstream

_add(DatasetRecord(
    name="CIFAR10",
    module="cifar10",
    title="CIFAR-10 (50,000 train / 10,000 test, python pickles)",
    licence="no licence stated; cite Krizhevsky (2009)",
    homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
    resources=(
        Resource(
            "cifar-10-python.tar.gz",
            urls=("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
            size=170_498_071,
            md5="c58f30108f718f92721af3b95e74349a",
            sha256="6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
            include=("cifar-10-batches-py/*",),
            source="torchvision cifar.py (md5), prototype cifar.py and keras (sha256)",
        ),
    ),
))

_CALTECH_SPLITS = (
    "https://raw.githubusercontent.com/linusericsson/ssl-transfer/"
    "5fbb1eb06f5bb69ef40426410f9e83602a04f04e/caltech101-splits/"
)
_add(DatasetRecord(
    name="Caltech101",
    module="caltech101",
    title="Caltech-101 (9,144 images, 102 folders) with the ssl-transfer 30-per-class split",
    licence="licence not stated by the sources; cite Fei-Fei, Fergus & Perona (2004)",
    homepage="https://data.caltech.edu/records/mzrjq-6wc02",
    resources=(
        # The Drive copy answers 404 since mid-2025 (pytorch/vision 9097, 9192) and the
        # vision.caltech.edu address only redirected to it; torchvision moved to CaltechDATA.
        # Its zip wraps the original tarball, which keeps its own recorded hashes.
        Resource(
            "caltech-101.zip",
            urls=("https://data.caltech.edu/records/mzrjq-6wc02/files/caltech-101.zip?download=1",),
            size=137_414_764,
            sha256="331234750fc7f77520e50d9565e8b6907b03565e30320da1401130db08c61f91",
            inner="101_ObjectCategories.tar.gz",
            inner_md5="b224c7392d521a49829488ab0f1120d9",
            inner_sha256="af6ece2f339791ca20f855943d8b55dd60892c0a25105fcd631ee3d6430f9926",
            dest="caltech101",
            include=("101_ObjectCategories/*",),
            source="CaltechDATA record mzrjq-6wc02 (URL); TFDS caltech101 checksums.tsv (zip size, "
            "sha256); inner tarball: torchvision caltech.py (md5), TFDS (sha256)",
        ),
        # The split of the paper's sibling repo (version contemporaneous with the paper).
        Resource(
            "train.txt", urls=(_CALTECH_SPLITS + "train.txt",), extract=False,
            md5="74cfca6952c6419e4289e2c5c38a1ffc",
            sha256="11ebeedd88c494ebecbecb05770f5f379cbfc1c8c2cbf8796c86bcb9a192bf11",
            source="linusericsson/ssl-transfer @ 5fbb1eb caltech101-splits/train.txt",
        ),
        Resource(
            "test.txt", urls=(_CALTECH_SPLITS + "test.txt",), extract=False,
            md5="feecf25de2fc35642a14528efc60d4ca",
            sha256="b9ed3419c72dff3f1ad3cb7cee5eb756e6e59502cc0062d46f3b454da3f87c24",
            source="linusericsson/ssl-transfer @ 5fbb1eb caltech101-splits/test.txt",
        ),
    ),
    fallback=(
        "Download caltech-101.zip from https://data.caltech.edu/records/mzrjq-6wc02 in a "
        "browser and pass it with --from (or unpack 101_ObjectCategories.tar.gz from it and "
        "pass the folder holding 101_ObjectCategories/)."
    ),
))

_FLOWERS = "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/"
_add(DatasetRecord(
    name="Flowers",
    module="flowers",
    title="Oxford 102 Flowers (8,189 images; setid.mat splits)",
    licence="licence not stated by the sources; cite Nilsback & Zisserman (2008)",
    homepage=_FLOWERS,
    resources=(
        # An uncompressed tar despite the .tgz name (TFDS): the type comes from the bytes.
        Resource(
            "102flowers.tgz", urls=(_FLOWERS + "102flowers.tgz",), size=344_862_509,
            md5="52808999861908f626f3c1f4e79d11fa",
            sha256="2d01ecc807db462958cfe3d92f57a8c252b4abd240eb955770201e45f783b246",
            include=("jpg/*",),
            source="torchvision flowers102.py (md5), TFDS (size, sha256)",
        ),
        Resource(
            "imagelabels.mat", urls=(_FLOWERS + "imagelabels.mat",), size=502, extract=False,
            md5="e0620be6f572b9609742df49c70aed4d",
            sha256="4903e94206bac23bf772aadf06451916df56b58fc483a62db32a97b82656651d",
            source="torchvision flowers102.py (md5), TFDS (size, sha256)",
        ),
        Resource(
            "setid.mat", urls=(_FLOWERS + "setid.mat",), size=14_989, extract=False,
            md5="a5357ecc9cb78c4bef273ce3793fc85c",
            sha256="46b8678f91fd95d3c8f4feab80d271a6c834a1dd896fe29fd3e6ad9ce5c8dccd",
            source="torchvision flowers102.py (md5), TFDS (size, sha256)",
        ),
    ),
))

_CELEBA_TEXT = (
    ("list_attr_celeba.txt", "0B7EVK8r0v71pblRyaVFSWGxPY0U", 26_721_026,
     "75e246fa4810816ffd6ee81facbd244c", "f0e5da289d5ccf75ffe8811132694922b60f2af59256ed362afa03fefba324d0"),
    ("identity_CelebA.txt", "1_ee_0u7vcNLOfNLegJRHmolfH5ICW-XS", None,
     "32bd1bd63d3c78cd57e08160ec5ed1e2", "c6143857c3e2630ac2da9f782e9c1232e5e59be993a9d44e8a7916c78a6158c0"),
    ("list_bbox_celeba.txt", "0B7EVK8r0v71pbThiMVRxWXZ4dU0", None,
     "00566efa6fedff7a56946cd1c10f1c16", "7487a82e57c4bb956c5445ae2df4a91ffa717e903c5fa22874ede0820c8ec41b"),
    ("list_landmarks_align_celeba.txt", "0B7EVK8r0v71pd0FJY3Blby1HUTQ", 12_156_055,
     "cc24ecafdb5b50baae59b03474781f8c", "6c02a87569907f6db2ba99019085697596730e8129f67a3d61659f198c48d43b"),
    ("list_eval_partition.txt", "0B7EVK8r0v71pY0NSMzRuSXJEVkk", 2_836_386,
     "d32c9cbf5e040fd4025c592c306e6668", "fc955bcb3ef8fbdf7d5640d9a8693a8431b5f2ee291a5c1449a1549e7e073fe7"),
)
_add(DatasetRecord(
    name="CelebA",
    module="celeba",
    title="CelebA aligned faces (202,599 images) with landmarks and the official partition",
    licence="non-commercial research only (CelebA Dataset Release Agreement)",
    homepage="https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html",
    resources=(
        Resource(
            "img_align_celeba.zip",
            urls=(
                gdrive("0B7EVK8r0v71pZjFTYXZWM3FlRnM"),
                # The same file (same sha256) as pytorch/tutorials' DCGAN tutorial serves it.
                "https://s3.amazonaws.com/pytorch-tutorial-assets/img_align_celeba.zip",
            ),
            size=1_443_490_838,
            md5="00d2c5bc6d35e252742224ab0c1e8fcb",
            sha256="46fb89443c578308acf364d7d379fe1b9efb793042c0af734b6112e4fd3a8c74",
            dest="celeba", include=("img_align_celeba/*",),
            source="torchvision celeba.py (md5, Drive id), prototype celeba.py (sha256), TFDS (size)",
        ),
        *(
            Resource(
                name, urls=(gdrive(file_id),), size=size, md5=md5, sha256=sha256, extract=False,
                dest=f"celeba/{name}",
                source="torchvision celeba.py (md5, Drive id), prototype celeba.py (sha256), TFDS (size)",
            )
            for name, file_id, size, md5, sha256 in _CELEBA_TEXT
        ),
    ),
    fallback=(
        "Google Drive limits downloads of these files per day. If it refuses, download them "
        "from the CelebA page (Align&Cropped Images, Anno, Eval folders) in a browser and "
        "pass the folder holding them with --from."
    ),
))

_add(DatasetRecord(
    name="300W",
    module="w300",
    title="300 Faces In-the-Wild, 01_Indoor + 02_Outdoor (600 images, 68 landmarks)",
    licence="annotations for research purposes only, no commercial use (iBUG terms)",
    homepage="https://ibug.doc.ic.ac.uk/resources/300-W/",
    resources=(
        # The Oxford VGG copy (DVE); the iBUG originals sit behind a registration form.
        Resource(
            "300w.tar.gz",
            urls=("http://www.robots.ox.ac.uk/~vgg/research/DVE/data/datasets/300w.tar.gz",),
            sha1="885b09159c61fa29998437747d589c65cfc4ccd3",
            root="find:01_Indoor", include=("01_Indoor/*", "02_Outdoor/*"),
            source="jamt9000/DVE misc/datasets/300w/README.md (URL, sha1) and tar_include.txt (layout)",
        ),
    ),
    size_note="~3.0 GiB",  # the DVE copy also holds AFW, HELEN, LFPW and iBUG
    fallback=(
        "The official copy needs the iBUG form at https://ibug.doc.ic.ac.uk/resources/300-W/: "
        "download 300w.zip.001 ... 300w.zip.004, join them (cat 300w.zip.00? > 300w.zip) and "
        "unzip; then pass the folder that holds 01_Indoor/ and 02_Outdoor/ with --from."
    ),
))

# One name across fetch-data, ``downstream --dataset`` and result files: the protocol's
# ``leeds_sports_pose``. ``LeedsSportsPose`` (the name fetch-data used before 0.2, and the
# reference's folder, kept on disk) and ``lsp`` are accepted as aliases.
_add(DatasetRecord(
    name="leeds_sports_pose",
    folder="LeedsSportsPose",
    module="lsp",
    title="Leeds Sports Pose (2,000 images, 14 joints)",
    licence="no explicit licence; cite Johnson & Everingham, BMVC 2010",
    homepage="https://sam.johnson.io/research/lsp.html",
    resources=(
        Resource(
            "lsp_dataset.zip",
            # The comp.leeds.ac.uk mirror is dead; sam.johnson.io answers over https.
            urls=("https://sam.johnson.io/research/lsp_dataset.zip",),
            # images/ and joints.mat sit at the zip's root; "find:" also accepts a copy
            # repacked under an lsp_dataset/ folder.
            root="find:joints.mat", include=("images/*", "joints.mat", "README.txt"),
            source="LSP README copies and loaders (layout); no published checksum",
        ),
    ),
))

# ------------------------------------------------------------------------ real world

_add(DatasetRecord(
    name="COIL100",
    module="coil100",
    title="Columbia Object Image Library (100 objects x 72 poses)",
    licence="research use; cite Nene, Nayar & Murase, CUCS-006-96",
    homepage="https://www.cs.columbia.edu/CAVE/software/softlib/coil-100.php",
    resources=(
        Resource(
            "coil-100.zip",
            urls=("https://www.cs.columbia.edu/CAVE/databases/SLAM_coil-20_coil-100/coil-100/coil-100.zip",),
            size=130_688_843,
            sha256="fcb4b8b01c0778f416d8d7a09f45082c4f7075cc74743dcddd5c44307bd4afe7",
            root="coil-100", include=("obj*__*.png",),  # flat, as the reference reads it
            source="TFDS coil100 checksums.tsv and builder",
        ),
    ),
))

_ALOI = "http://aloi.science.uva.nl/tars/"
_add(DatasetRecord(
    name="ALOI",
    module="aloi",
    title="Amsterdam Library of Object Images, quarter resolution: viewpoint, illumination, colour",
    licence="licence not stated; cite Geusebroek, Burghouts & Smeulders, IJCV 2005",
    homepage="https://aloi.science.uva.nl/",
    resources=tuple(
        # One top folder (png4/) then <obj>/<obj>_*.png: strip the top folder.
        Resource(
            f"aloi_red4_{part}.tar", urls=(f"{_ALOI}aloi_red4_{part}.tar",), md5=md5,
            dest=mode, root="*", include=("*/*.png",),
            source="google-deepmind/dm_nevis handlers/aloi.py (URL, md5)",
        )
        for part, mode, md5 in (
            ("view", "viewpoint", "ca29f342bb0c1fa4788e9f76f591ec59"),
            ("ill", "illumination", "0f72c3acf66908e61b6f8d5bf5981193"),
            ("col", "temperature", "c0486588258de8a26df4ed7aff0b34f8"),
        )
    ),
))

_add(DatasetRecord(
    name="ALOT",
    module="alot",
    title="Amsterdam Library of Textures, quarter resolution colour (250 materials)",
    licence="licence not stated (see https://aloi.science.uva.nl/public_alot/)",
    homepage="https://aloi.science.uva.nl/public_alot/",
    resources=(
        Resource(
            "alot_png4.tar", urls=("http://aloi.science.uva.nl/public_alot/tars/alot_png4.tar",),
            md5="c3f489c9072d3469e43225c5906e01e2",
            root="*", include=("*/*.png",),
            source="google-deepmind/dm_nevis handlers/alot.py (URL, md5)",
        ),
    ),
))

_add(DatasetRecord(
    name="DaLI",
    module="dali",
    title="DaLI: deformation and light-invariant descriptor dataset (12 scenes x 32 views)",
    licence="licence not stated; cite Simo-Serra, Torras & Moreno-Noguer, IJCV 2015",
    homepage="https://esslab.jp/~ess/en/data/dali_data/",
    resources=(
        Resource(None, root="find:input/png", include=("input/png/*",),
                 source="layout from the reference's datasets/dali.py; archive not documented"),
    ),
    manual=(
        "DaLI has no documented direct download URL. Download the full dataset from "
        "https://esslab.jp/~ess/en/data/dali_data/ and pass the archive (or the unpacked "
        "folder, which must contain input/png/<scene>/*.png) with --from, or give its URL "
        "in a --manifest."
    ),
))

_add(DatasetRecord(
    name="ExposureErrors",
    module="exposure_errors",
    title="Multi-scale exposure correction data (Afifi et al., CVPR 2021), validation split",
    licence="follows the MIT-Adobe FiveK licence: research use only",
    homepage="https://github.com/mahmoudnafifi/Exposure_Correction",
    resources=(
        # The split the paper used is not stated (test has no GT_IMAGES). The validation
        # split is the default here; a manifest can point at the training archive.
        Resource(
            None,
            urls=(  # the authors' order: sync.com, then the Drive mirror
                "https://ln2.sync.com/dl/49a6738c0/3m3imxpe-w6eqiczn-vripaqcf-jpswtcfr",
                gdrive("1k_L2I63NpjDbhFFfHinwF7_2KjTIiipk"),
            ),
            root="find:INPUT_IMAGES", include=("INPUT_IMAGES/*", "GT_IMAGES/*"),
            source="mahmoudnafifi/Exposure_Correction README (links); layout from the reference",
        ),
    ),
    fallback=(
        "If the links refuse, download the validation (or training) set from "
        "https://github.com/mahmoudnafifi/Exposure_Correction#dataset in a browser and pass "
        "the archive or the folder holding INPUT_IMAGES/ and GT_IMAGES/ with --from."
    ),
    notes=("Which split the paper used is not stated; sslinv installs the validation split.",),
))

_add(DatasetRecord(
    name="Flickr1024",
    module="flickr1024",
    title="Flickr1024 stereo pairs (1,024 pairs; Train/Validation/Test folders)",
    licence="non-commercial use only; images belong to their Flickr owners",
    homepage="https://yingqianwang.github.io/Flickr1024/",
    resources=(
        Resource(
            None, urls=(gdrive("1My6oQaHzclxRrKID-mylvs6Z0d5pT_Cu"),),
            root="find:*/*_L.png", include=("*/*_L.png", "*/*_R.png"),
            source="YingqianWang/Flickr1024 README (Drive id); layout from the reference",
        ),
    ),
    fallback=(
        "If Google Drive refuses, download Flickr1024 from "
        "https://yingqianwang.github.io/Flickr1024/ in a browser and pass the archive (or the "
        "folder holding the Train/Validation/Test folders) with --from."
    ),
))

_add(DatasetRecord(
    name="RealBlur",
    module="realblur",
    title="RealBlur-J (sharp/blurred scene pairs)",
    licence="CC BY 4.0",
    homepage="http://cg.postech.ac.kr/research/RealBlur/",
    resources=(
        # RealBlur.zip on cg.postech.ac.kr appeared only in a script the authors deleted the
        # same day (2020); the release is RealBlur.tar.gz on their cgdata share (README).
        Resource(
            "RealBlur.tar.gz", urls=("https://cgdata.postech.ac.kr/sharing/YhKdbtvD0",),
            root="find:RealBlur-J_ECC_IMCORR_centroid_itensity_ref",
            include=("RealBlur-J_ECC_IMCORR_centroid_itensity_ref/*",),
            source="rimchang/RealBlur README (share), extract_tar_link_file.sh (archive name), "
            "link_file.sh (layout); no published checksum or size",
        ),
    ),
    fallback=(
        "The share is a web page: if it does not hand over the file, open "
        "https://cgdata.postech.ac.kr/sharing/YhKdbtvD0 (or the Google Drive folder "
        "https://drive.google.com/drive/folders/1xUNAAVzLhNQuGriKTk1hrE-MT-H_56fq) in a browser, "
        "download RealBlur.tar.gz and pass it with --from."
    ),
))

_ZENODO = "https://zenodo.org/records/4784282/files/"  # /record/ redirects here
_add(DatasetRecord(
    name="Causal3DIdent",
    module="causal3dident",
    title="Causal3DIdent (7 object classes, 10 latent factors; 250,000 train / 25,000 test)",
    licence="see Zenodo record 4784282; cite von Kuegelgen et al., NeurIPS 2021",
    homepage="https://zenodo.org/records/4784282",
    resources=tuple(
        # trainset/ (or testset/) holds images_0..6/ and latents_0..6.npy; nothing else may
        # be a folder there (ImageFolder classes), so only those are kept.
        Resource(
            f"{split}.tar.gz",
            urls=(f"{_ZENODO}{split}.tar.gz", f"https://zenodo.org/record/4784282/files/{split}.tar.gz"),
            md5=md5, dest=split, root="find:images_0",
            include=("images_*/*", "latents_*.npy", "raw_latents_*.npy"),
            source="nmichlo/disent Causal3dIdent data (full-file md5); layout from SSLID and the reference",
        )
        for split, md5 in (
            ("trainset", "acd98fda30eee75856dbbc7c54a27e45"),
            ("testset", "c5d9d32d3737e241a2b12b968275fcb8"),
        )
    ),
))
