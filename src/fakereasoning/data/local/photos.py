"""The catalog of real photographs available offline, and how to get them.

Sources: colour photos inside the scikit-image, scikit-learn and matplotlib wheels (always there), photos
in Debian wallpaper / documentation packages (fetched with `apt-get download` + `dpkg -x` into a cache
folder, never installed; skipped with a message when apt is unavailable), and the user's own `--photos`.
Only photographs are listed: renders, paintings, drawings, logos, screenshots, calibration charts and
near-duplicate views (stereo pairs, the second of two shots of one scene) are left out on purpose. Each
entry has a license and a one-line description that serves as the image caption.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from fakereasoning.imageio import is_image_path

Log = Callable[[str], None]


@dataclass(frozen=True)
class CatalogEntry:
    id: str
    origin: str  # "skimage" | "sklearn" | "matplotlib" | a Debian package name
    file: str  # path inside the origin (package data folder or extracted .deb root)
    license: str
    description: str


@dataclass(frozen=True)
class Photo:
    """A source photograph that exists on disk."""

    id: str
    origin: str
    file: str  # as recorded in the manifest ("<origin>:<file>")
    license: str
    description: str
    path: Path


PYPI_PHOTOS: tuple[CatalogEntry, ...] = (
    CatalogEntry("astronaut", "skimage", "astronaut.png", "public domain (NASA)",
                 "A portrait of astronaut Eileen Collins in her orange flight suit in front of a flag."),
    CatalogEntry("chelsea", "skimage", "chelsea.png", "CC0-1.0 (Stefan van der Walt)",
                 "A tabby cat named Chelsea looking to the side, close up."),
    CatalogEntry("coffee", "skimage", "coffee.png", "CC0-1.0 (Rachel Michetti)",
                 "A cup of coffee with latte art on a saucer with a spoon."),
    CatalogEntry("rocket", "skimage", "rocket.jpg", "public domain (SpaceX)",
                 "A rocket standing on its launch pad under a blue sky."),
    CatalogEntry("motorcycle", "skimage", "motorcycle_left.png", "Middlebury stereo data (research use)",
                 "A red motorcycle parked in a workshop among tools and boxes."),
    CatalogEntry("china", "sklearn", "china.jpg", "CC-BY-2.0 (danielbuechele)",
                 "A traditional Chinese temple roof among green trees under a clear sky."),
    CatalogEntry("flower", "sklearn", "flower.jpg", "CC-BY-2.0 (danielbuechele)",
                 "A pink flower with a yellow centre in close-up against green leaves."),
    CatalogEntry("grace_hopper", "matplotlib", "grace_hopper.jpg", "public domain (US Navy)",
                 "A portrait of Rear Admiral Grace Hopper in naval uniform."),
)

_PLASMA = "usr/share/wallpapers/{}/contents/images/{}"
_LOMIRI = "usr/share/backgrounds/{}"
_MATE = "usr/share/backgrounds/mate/nature/{}"
_OPENCV = "usr/share/doc/opencv-doc/examples/{}"
_OPENCV_LICENSE = "Apache-2.0 AND BSD-3-Clause (OpenCV sample data)"

DEBIAN_PHOTOS: tuple[CatalogEntry, ...] = (
    # plasma-workspace-wallpapers (LGPL-3 unless noted; photographers in each metadata.json)
    CatalogEntry("plasma_bythewater", "plasma-workspace-wallpapers", _PLASMA.format("BytheWater", "1920x1080.jpg"), "LGPL-3 (Maciej Wiklo)", "A wooden pier leading over calm water at dusk."),
    CatalogEntry("plasma_coldripple", "plasma-workspace-wallpapers", _PLASMA.format("ColdRipple", "1920x1080.jpg"), "LGPL-3 (Risto Saukonpaa)", "A wooden jetty in grey fog over still water, in black and white."),
    CatalogEntry("plasma_colorfulcups", "plasma-workspace-wallpapers", _PLASMA.format("ColorfulCups", "2560x1600.jpg"), "LGPL-3 (Dmitri Popov)", "Rows of colourful cups seen from above."),
    CatalogEntry("plasma_darkesthour", "plasma-workspace-wallpapers", _PLASMA.format("DarkestHour", "1920x1080.jpg"), "LGPL-3 (Risto Saukonpaa)", "A lake in blue twilight fog with a faint far shore."),
    CatalogEntry("plasma_eveningglow", "plasma-workspace-wallpapers", _PLASMA.format("EveningGlow", "1920x1080.jpg"), "LGPL-3 (Ian Hex)", "Red rowing boats pulled up on a lake shore at sunset."),
    CatalogEntry("plasma_fallenleaf", "plasma-workspace-wallpapers", _PLASMA.format("FallenLeaf", "1920x1080.jpg"), "LGPL-3 (Martin Klapetek)", "An orange autumn leaf on the forest floor with a blurred background."),
    CatalogEntry("plasma_grey", "plasma-workspace-wallpapers", _PLASMA.format("Grey", "1920x1080.jpg"), "LGPL-3 (Sigi Sagi)", "Curved layers of a modern building facade in black and white."),
    CatalogEntry("plasma_onestandsout", "plasma-workspace-wallpapers", _PLASMA.format("OneStandsOut", "1920x1080.jpg"), "LGPL-3 (Risto Saukonpaa)", "Green plant rosettes seen from above with a single orange one."),
    CatalogEntry("plasma_path", "plasma-workspace-wallpapers", _PLASMA.format("Path", "1920x1080.jpg"), "LGPL-3 (Risto Saukonpaa)", "A narrow footpath through a dense green spruce forest."),
    CatalogEntry("plasma_volna", "plasma-workspace-wallpapers", _PLASMA.format("Volna", "5120x2880.jpg"), "CC-BY-SA-4.0 (Nikita Babin)", "A wave washing over a sandy beach, seen from above."),
    CatalogEntry("plasma_summer1am", "plasma-workspace-wallpapers", _PLASMA.format("summer_1am", "1920x1080.jpg"), "LGPL-3 (Risto Saukonpaa)", "A calm lake under a pastel summer night sky with reeds."),
    # lomiri-wallpapers-16.04 (licenses from its copyright file)
    CatalogEntry("lomiri_bridge", "lomiri-wallpapers-16.04", _LOMIRI.format("Bridge_by_Sander_Klootwijk.jpg"), "CC-BY-SA-4.0 (Sander Klootwijk)", "Steel cables of a bridge against a pale sky over a flat shore."),
    CatalogEntry("lomiri_dragonfly", "lomiri-wallpapers-16.04", _LOMIRI.format("Dragonfly_by_Bolly.jpg"), "CC-BY-SA-4.0 (Bolly)", "Green leaves of a tree against a blue sky."),
    CatalogEntry("lomiri_fig", "lomiri-wallpapers-16.04", _LOMIRI.format("Picture_0B_by_freespace.jpg"), "CC-BY-4.0 (freespace)", "A halved fig in a red bowl on a concrete surface."),
    CatalogEntry("lomiri_brushes", "lomiri-wallpapers-16.04", _LOMIRI.format("Picture_1A_by_freespace.jpg"), "CC-BY-4.0 (freespace)", "Paint brushes with colourful bristles in close-up."),
    CatalogEntry("lomiri_wine", "lomiri-wallpapers-16.04", _LOMIRI.format("Wine_by_Jakkub_Mede.jpg"), "CC-BY-4.0 (Jakkub Mede)", "A wine bottle on a wooden table beside a drum in a living room."),
    CatalogEntry("lomiri_aitzgorri", "lomiri-wallpapers-16.04", _LOMIRI.format("aitzgorri_by_Aitzol_Berasategi.jpg"), "CC-BY-4.0 (Aitzol Berasategi)", "A green mountain meadow with autumn trees below a rocky ridge."),
    CatalogEntry("lomiri_free", "lomiri-wallpapers-16.04", _LOMIRI.format("free_by_Peter_Nerlich.jpg"), "CC-BY-SA-4.0 (Peter Nerlich)", "A small bird figure hanging under bright round lamps."),
    CatalogEntry("lomiri_friends", "lomiri-wallpapers-16.04", _LOMIRI.format("friends_by_Aitzol_Berasategi.jpg"), "CC-BY-4.0 (Aitzol Berasategi)", "Two brown dogs looking out of a wooden window."),
    CatalogEntry("lomiri_greentock", "lomiri-wallpapers-16.04", _LOMIRI.format("greentock_by_Peter_Nerlich.jpg"), "CC-BY-SA-4.0 (Peter Nerlich)", "A grey wall clock in close-up with light falling across its face."),
    CatalogEntry("lomiri_life", "lomiri-wallpapers-16.04", _LOMIRI.format("life_by_Aitzol_Berasategi.jpg"), "CC-BY-4.0 (Aitzol Berasategi)", "A forest stream running over mossy rocks."),
    CatalogEntry("lomiri_picos", "lomiri-wallpapers-16.04", _LOMIRI.format("picosdeeuropa_by_Aitzol_Berasategi.jpg"), "CC-BY-4.0 (Aitzol Berasategi)", "A trail across a high meadow below jagged snowy mountains."),
    CatalogEntry("lomiri_seeding", "lomiri-wallpapers-16.04", _LOMIRI.format("seeding_by_Clements_Engelhardt.jpg"), "CC0-1.0 (Clements Engelhardt)", "Dandelion seed heads in a meadow backlit by a low sun."),
    CatalogEntry("lomiri_sunset", "lomiri-wallpapers-16.04", _LOMIRI.format("sunset_by_Aitzol_Berasategi.jpg"), "CC-BY-4.0 (Aitzol Berasategi)", "The sun setting over a rocky hilltop with distant ridges."),
    # mate-backgrounds, nature/ only (GPL-2+)
    CatalogEntry("mate_aqua", "mate-backgrounds", _MATE.format("Aqua.jpg"), "GPL-2+", "A drop splashing into water in close-up."),
    CatalogEntry("mate_blinds", "mate-backgrounds", _MATE.format("Blinds.jpg"), "GPL-2+", "Parallel veins of a bright green leaf in close-up."),
    CatalogEntry("mate_dune", "mate-backgrounds", _MATE.format("Dune.jpg"), "GPL-2+", "Dune grass in the wind in front of the sea."),
    CatalogEntry("mate_freshflower", "mate-backgrounds", _MATE.format("FreshFlower.jpg"), "GPL-2+", "Orange flower petals in macro."),
    CatalogEntry("mate_garden", "mate-backgrounds", _MATE.format("Garden.jpg"), "GPL-2+", "A red and yellow marigold in a garden with a blurred background."),
    CatalogEntry("mate_greenmeadow", "mate-backgrounds", _MATE.format("GreenMeadow.jpg"), "GPL-2+", "Blades of fresh green grass in close-up."),
    CatalogEntry("mate_ladybird", "mate-backgrounds", _MATE.format("LadyBird.jpg"), "GPL-2+", "A ladybird on a stem among small blue forget-me-not flowers."),
    CatalogEntry("mate_raindrops", "mate-backgrounds", _MATE.format("RainDrops.jpg"), "GPL-2+", "Rain drops on broad green leaves."),
    CatalogEntry("mate_storm", "mate-backgrounds", _MATE.format("Storm.jpg"), "GPL-2+", "Dark storm clouds over a flat landscape and a road."),
    CatalogEntry("mate_twowings", "mate-backgrounds", _MATE.format("TwoWings.jpg"), "GPL-2+", "Dandelion seeds resting on an orange flower."),
    CatalogEntry("mate_wood", "mate-backgrounds", _MATE.format("Wood.jpg"), "GPL-2+", "Weathered white wooden boards in soft light."),
    CatalogEntry("mate_yellowflower", "mate-backgrounds", _MATE.format("YellowFlower.jpg"), "GPL-2+", "A yellow flower with a dark centre in macro."),
    # opencv-doc examples: photographs only (no charts, drawings, renders, chessboards, grayscale stills)
    CatalogEntry("cv_fruits", "opencv-doc", _OPENCV.format("data/fruits.jpg"), _OPENCV_LICENSE, "Sliced oranges, lemons, a kiwi and a lime on a table."),
    CatalogEntry("cv_baboon", "opencv-doc", _OPENCV.format("data/baboon.jpg"), _OPENCV_LICENSE, "The face of a mandrill with a red nose and blue cheeks."),
    CatalogEntry("cv_leuven", "opencv-doc", _OPENCV.format("data/leuvenA.jpg"), _OPENCV_LICENSE, "Brick houses around a cobbled square under an overcast sky."),
    CatalogEntry("cv_squirrel", "opencv-doc", _OPENCV.format("data/squirrel_cls.jpg"), _OPENCV_LICENSE, "A squirrel sitting on a branch among green leaves."),
    CatalogEntry("cv_home", "opencv-doc", _OPENCV.format("data/home.jpg"), _OPENCV_LICENSE, "An ornate building with towers under a blue sky with birds."),
    CatalogEntry("cv_aloe", "opencv-doc", _OPENCV.format("data/aloeL.jpg"), _OPENCV_LICENSE, "An aloe plant in a clay pot in front of patterned wallpaper."),
    CatalogEntry("cv_board", "opencv-doc", _OPENCV.format("data/board.jpg"), _OPENCV_LICENSE, "A green circuit board with chips and capacitors."),
    CatalogEntry("cv_orange", "opencv-doc", _OPENCV.format("data/orange.jpg"), _OPENCV_LICENSE, "An orange in close-up on a green background."),
    CatalogEntry("cv_messi", "opencv-doc", _OPENCV.format("data/messi5.jpg"), _OPENCV_LICENSE, "A football player kicking a ball on a pitch in front of a crowd."),
    CatalogEntry("cv_notebook", "opencv-doc", _OPENCV.format("data/ela_original.jpg"), _OPENCV_LICENSE, "A dark notebook with a green elastic band."),
    CatalogEntry("cv_apple", "opencv-doc", _OPENCV.format("data/apple.jpg"), _OPENCV_LICENSE, "A red apple on a green background."),
    CatalogEntry("cv_butterfly", "opencv-doc", _OPENCV.format("data/butterfly.jpg"), _OPENCV_LICENSE, "A black and white butterfly resting on a striped leaf."),
    CatalogEntry("cv_building", "opencv-doc", _OPENCV.format("data/building.jpg"), _OPENCV_LICENSE, "A white multi-storey hotel building with rows of windows."),
    CatalogEntry("cv_aerial", "opencv-doc", _OPENCV.format("data/aero1.jpg"), _OPENCV_LICENSE, "An aerial view of a town beside a river and forests."),
    CatalogEntry("cv_stuff", "opencv-doc", _OPENCV.format("data/stuff.jpg"), _OPENCV_LICENSE, "A pen, a lighter and round objects on a grey table."),
    CatalogEntry("cv_graffiti", "opencv-doc", _OPENCV.format("data/graf1.png"), _OPENCV_LICENSE, "A colourful graffiti mural on a wall."),
    CatalogEntry("cv_dog", "opencv-doc", _OPENCV.format("data/chicky_512.png"), _OPENCV_LICENSE, "A small long-haired dog with its tongue out."),
    CatalogEntry("cv_plant", "opencv-doc", _OPENCV.format("alphamat/input_images/plant.jpg"), _OPENCV_LICENSE, "A leafy potted plant on a table."),
    CatalogEntry("cv_rubberwhale", "opencv-doc", _OPENCV.format("data/rubberwhale1.png"), _OPENCV_LICENSE, "Toys and a rubber whale on a table before a lattice and a knitted cloth."),
    CatalogEntry("cv_scene1", "opencv-doc", _OPENCV.format("text/scenetext01.jpg"), _OPENCV_LICENSE, "A no-parking sign on a street with parked cars."),
    CatalogEntry("cv_scene2", "opencv-doc", _OPENCV.format("text/scenetext02.jpg"), _OPENCV_LICENSE, "A direction sign to a sports centre among trees."),
    CatalogEntry("cv_scene3", "opencv-doc", _OPENCV.format("text/scenetext03.jpg"), _OPENCV_LICENSE, "A covered walkway with a copy-centre sign and hanging flowers."),
    CatalogEntry("cv_scene4", "opencv-doc", _OPENCV.format("text/scenetext04.jpg"), _OPENCV_LICENSE, "A yellow generator behind a wall with palm trees."),
    CatalogEntry("cv_scene5", "opencv-doc", _OPENCV.format("text/scenetext05.jpg"), _OPENCV_LICENSE, "A yellow no-parking barrier on a paved street."),
    CatalogEntry("cv_scene6", "opencv-doc", _OPENCV.format("text/scenetext06.jpg"), _OPENCV_LICENSE, "A pub with a painted sign on a street corner."),
)
DEBIAN_PACKAGES: tuple[str, ...] = tuple(dict.fromkeys(e.origin for e in DEBIAN_PHOTOS))


def _pypi_root(origin: str) -> Path | None:
    try:
        if origin == "skimage":
            import skimage

            return Path(skimage.__file__).parent / "data"
        if origin == "sklearn":
            import sklearn.datasets

            return Path(sklearn.datasets.__file__).parent / "images"
        if origin == "matplotlib":
            import matplotlib

            return Path(matplotlib.get_data_path()) / "sample_data"
    except ImportError:
        return None
    return None


def _photo(entry: CatalogEntry, path: Path) -> Photo:
    return Photo(entry.id, entry.origin, f"{entry.origin}:{entry.file}", entry.license, entry.description, path)


def pypi_photos(log: Log = print) -> list[Photo]:
    """The catalogued photos that ship inside installed Python wheels."""
    found: list[Photo] = []
    for entry in PYPI_PHOTOS:
        root = _pypi_root(entry.origin)
        path = root / entry.file if root else None
        if path is None or not path.is_file():
            log(f"skipping photo {entry.id}: {entry.origin} file {entry.file} not found")
            continue
        found.append(_photo(entry, path))
    return found


def fetch_debian_package(package: str, cache: Path, log: Log = print) -> Path | None:
    """Extract a Debian package into `cache/debian/<package>` (once) and return that folder, or None.

    Uses `apt-get download` (no install, no root needed beyond a writable cache) and `dpkg -x`; extraction
    goes to a temp folder renamed into place, so an interrupted fetch never leaves a half tree behind.
    """
    target = cache / "debian" / package
    if (target / ".complete").is_file():
        return target
    apt, dpkg = shutil.which("apt-get"), shutil.which("dpkg")
    if not apt or not dpkg:
        log(f"skipping Debian package {package}: apt-get/dpkg not available")
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{package}.") as tmp:
        work = Path(tmp)
        try:
            subprocess.run([apt, "download", package], cwd=work, check=True, capture_output=True, timeout=600)
            debs = sorted(work.glob(f"{package}_*.deb"))
            if not debs:
                raise FileNotFoundError(f"apt-get download left no {package}_*.deb")
            tree = work / "tree"
            subprocess.run([dpkg, "-x", str(debs[0]), str(tree)], check=True, capture_output=True, timeout=600)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
            detail = getattr(exc, "stderr", b"") or b""
            msg = detail.decode("utf-8", "replace").strip().splitlines()[-1:] if detail else [str(exc)]
            log(f"skipping Debian package {package}: could not fetch it ({' '.join(msg)[:200]})")
            return None
        (tree / ".complete").write_text(debs[0].name + "\n")
        if target.exists():
            shutil.rmtree(target)
        tree.rename(target)
    return target


def debian_photos(cache: Path, log: Log = print, packages: Iterable[str] = DEBIAN_PACKAGES) -> list[Photo]:
    found: list[Photo] = []
    wanted = set(packages)
    for package in DEBIAN_PACKAGES:
        if package not in wanted:
            continue
        root = fetch_debian_package(package, cache, log)
        if root is None:
            continue
        for entry in DEBIAN_PHOTOS:
            if entry.origin != package:
                continue
            path = root / entry.file
            if path.is_file():
                found.append(_photo(entry, path))
            else:
                log(f"skipping photo {entry.id}: {entry.file} not in package {package}")
    return found


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:40] or "photo"


def user_photos(folders: Iterable[str | Path], log: Log = print) -> list[Photo]:
    """Photos from the user's folders (recursively). Ids are stable: name slug + hash of the path."""
    found: list[Photo] = []
    for folder in folders:
        root = Path(folder).expanduser()
        if not root.is_dir():
            log(f"skipping --photos {folder}: not a folder")
            continue
        for path in sorted(p for p in root.rglob("*") if p.is_file() and is_image_path(p)):
            rel = path.relative_to(root).as_posix()
            digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:8]
            pid = f"user_{_slug(path.stem)}_{digest}"
            words = re.sub(r"[_\-]+", " ", path.stem).strip()
            found.append(Photo(pid, "user", f"user:{rel}", "user-supplied", f"A photograph ({words}).", path))
    return found


def collect_photos(
    include_debian: bool, cache: Path, photo_dirs: Iterable[str | Path] = (), log: Log = print
) -> list[Photo]:
    """All available photos, sorted by id (the order the deterministic split relies on)."""
    photos = pypi_photos(log)
    if include_debian:
        photos += debian_photos(cache, log)
    photos += user_photos(photo_dirs, log)
    unique: dict[str, Photo] = {}
    for p in photos:
        unique.setdefault(p.id, p)
    return [unique[k] for k in sorted(unique)]
