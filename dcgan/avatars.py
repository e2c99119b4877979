"""The built-in avatar dataset: cartoon faces with attribute labels, deterministic from (seed, index).

Each avatar is an avataaars-style SVG built with `python-avatars` from attributes drawn by `avatar_attributes(seed, i)`
(a curated, tasteful subset of what the package offers: no costumes, helmets or gross-out expressions), framed so
the head is centred and fills the square, and rendered with `resvg` straight onto an opaque background colour.

Avatar `i` of seed `s` depends on (s, i) only, so `avatars:N:S` is a prefix of `avatars:M:S` for M > N and any
worker can render any avatar. Every avatar carries the same set of text labels (see `ATTRIBUTE_NAMES`): the parts
it is made of (`hair`, `hair_color`, `eyes`, ...) and CelebA-named binary flags derived from them (`Eyeglasses`,
`Smiling`, ... as "1"/"0", the way ingest stores CelebA's own flags), so code written for CelebA labels works here.
"""

from __future__ import annotations

import functools
import io
import os
import re
from collections.abc import Iterator

import numpy as np
from PIL import Image

SOURCE_PREFIX = "avatars"

# The avataaars canvas is 264×280; the face is x 76..188, the skull top y≈36 and the chin y≈186. This square
# keeps the head centred and filling the frame, with a little hair and shoulder around it.
FRAME = (40.0, 16.0, 184.0)  # viewBox x, y, side

BACKGROUNDS = {  # soft colours that stay distinct from every skin and hair colour at 32×32
    "sky": "#cfe3f5",
    "mint": "#cdeedd",
    "sand": "#f3e3c3",
    "rose": "#f5d0d6",
    "lilac": "#ddd3f0",
    "silver": "#e2e5ea",
    "teal": "#9fd3d0",
    "peach": "#f7c8a8",
}

_HAIR = ("no_hair", "big_hair", "bob", "bun", "caesar_side_part", "caesar", "curly", "curvy", "dreads", "frida",
         "frizzle", "fro_band", "fro", "long_not_too_long", "mia_wallace", "shaggy_mullet", "shaggy", "short_curly",
         "short_dreads_1", "short_dreads_2", "short_flat", "short_round", "short_waved", "sides", "straight_1",
         "straight_2", "straight_strand", "braids", "bride", "buzzcut", "cornrows", "curly_2", "dreadlocks",
         "einstein_hair", "elvis", "evil_spike", "half_shaved", "loose_hair", "mohawk", "mowgli", "pixie",
         "pompadour", "quiff", "twist_long_hair", "twist_long_hair_2", "wick", "wild")
_HATS = ("hat", "hijab", "turban", "winter_hat_1", "winter_hat_2", "winter_hat_3", "winter_hat_4")
HAT_PROBABILITY = 0.1
_EYES = ("default", "happy", "squint", "side", "wink", "surprised", "closed", "eye_roll", "wink_wacky")
_EYEBROWS = ("angry_natural", "angry", "default_natural", "default", "flat_natural", "frown_natural",
             "raised_excited_natural", "raised_excited", "sad_concerned_natural", "sad_concerned", "unibrow_natural",
             "up_down_natural", "up_down")
_MOUTHS = ("concerned", "default", "disbelief", "eating", "grimace", "sad", "scream_open", "serious", "smile",
           "tongue", "twinkle", "big_smile")
_NOSES = ("default", "small", "wide")
_FACIAL_HAIR = ("beard_light", "beard_magestic", "beard_medium", "moustache_fancy", "moustache_magnum",
                "einstien_mustache", "wick_beard")
FACIAL_HAIR_PROBABILITY = 0.3
_GLASSES = ("prescription_01", "prescription_02", "round", "sunglasses", "sunglasses_2", "wayfarers", "wayfarers_2",
            "kurt")
GLASSES_PROBABILITY = 0.35
_CLOTHING = ("blazer_shirt", "blazer_sweater", "collar_sweater", "hoodie", "overall", "shirt_crew_neck",
             "shirt_scoop_neck", "shirt_v_neck", "bond_suit", "shirt_wick")
_SKIN = {"tanned": "#FD9841", "yellow": "#F8D25C", "pale": "#FFDBB4", "light": "#EDB98A", "brown": "#D08B5B",
         "dark_brown": "#AE5D29", "black": "#614335"}
_HAIR_COLORS = {"auburn": "#A55728", "black": "#2C1B18", "blonde": "#B58143", "blonde_golden": "#D6B370",
                "brown": "#724133", "brown_dark": "#4A312C", "pastel_pink": "#F59797", "platinum": "#ECDCBF",
                "red": "#C93305", "silver_gray": "#E8E1E1"}
_CLOTHING_COLORS = {"black": "#262E33", "blue_01": "#65C9FF", "blue_02": "#5199E4", "blue_03": "#25557C",
                    "gray_01": "#E6E6E6", "gray_02": "#929598", "heather": "#3C4F5C", "pastel_blue": "#B1E2FF",
                    "pastel_green": "#A7FFC4", "pastel_orange": "#FFDEB5", "pastel_yellow": "#FFFFB1",
                    "pink": "#FF488E", "red": "#FF5C5C", "white": "#FFFFFF"}

_SMILING_MOUTHS = {"default", "smile", "big_smile", "twinkle", "tongue"}
_BEARDS = {"beard_light", "beard_magestic", "beard_medium", "wick_beard"}
_MOUSTACHES = {"moustache_fancy", "moustache_magnum", "einstien_mustache"}
_HAIR_COLOR_FLAGS = {"Black_Hair": {"black", "brown_dark"}, "Blond_Hair": {"blonde", "blonde_golden", "platinum"},
                     "Brown_Hair": {"brown", "auburn"}, "Gray_Hair": {"silver_gray"}}

PART_NAMES = ("background", "skin", "hair", "hair_color", "hat", "hat_color", "eyes", "eyebrows", "mouth", "nose",
              "facial_hair", "facial_hair_color", "accessory", "clothing", "clothing_color")
FLAG_NAMES = ("Bald", "Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair", "Eyeglasses", "Mustache", "No_Beard",
              "Smiling", "Wearing_Hat")
ATTRIBUTE_NAMES = PART_NAMES + FLAG_NAMES
NONE = "none"


def parse_source(source: str) -> tuple[int, int] | None:
    """`avatars:N[:SEED]` → (N, SEED); None when `source` is not an avatar source. Raises ValueError when malformed."""
    if not source.startswith(SOURCE_PREFIX + ":"):
        return None
    parts = source.split(":")
    if len(parts) not in (2, 3):
        raise ValueError(f"avatar source must be avatars:N or avatars:N:SEED, got {source!r}")
    try:
        n = int(parts[1])
        seed = int(parts[2]) if len(parts) == 3 else 0
    except ValueError as e:
        raise ValueError(f"avatar source must be avatars:N:SEED with integers, got {source!r}") from e
    if n <= 0 or seed < 0:
        raise ValueError(f"avatar source needs N > 0 and SEED >= 0, got {source!r}")
    return n, seed


def avatar_id(seed: int, index: int) -> str:
    return f"avatar-{seed}-{index:07d}"


def _pick(rng: np.random.Generator, options) -> str:
    options = tuple(options)
    return options[int(rng.integers(len(options)))]


@functools.cache
def _top_supports(kind: str, name: str, element: str) -> bool:
    """Whether the package's SVG of a hair style or hat has the slot `element` (some cannot show facial hair)."""
    import python_avatars

    path = os.path.join(os.path.dirname(python_avatars.__file__), "avatar_parts", "top", kind, f"{name}.svg")
    with open(path, encoding="utf-8") as f:
        return f'id="{element}"' in f.read()


def avatar_attributes(seed: int, index: int) -> dict[str, str]:
    """The labels of avatar `index` of `seed`: a pure function of (seed, index). Keys are `ATTRIBUTE_NAMES`."""
    rng = np.random.default_rng([int(seed), int(index)])
    a: dict[str, str] = {
        "background": _pick(rng, BACKGROUNDS),
        "skin": _pick(rng, _SKIN),
        "hair": _pick(rng, _HAIR),
        "hair_color": _pick(rng, _HAIR_COLORS),
        "hat": NONE,
        "hat_color": NONE,
        "eyes": _pick(rng, _EYES),
        "eyebrows": _pick(rng, _EYEBROWS),
        "mouth": _pick(rng, _MOUTHS),
        "nose": _pick(rng, _NOSES),
        "facial_hair": NONE,
        "facial_hair_color": NONE,
        "accessory": NONE,
        "clothing": _pick(rng, _CLOTHING),
        "clothing_color": _pick(rng, _CLOTHING_COLORS),
    }
    # Draw every random number whatever the outcome, so one attribute's choice never shifts another's.
    hat, hat_color = _pick(rng, _HATS), _pick(rng, _CLOTHING_COLORS)
    wears_hat = rng.random() < HAT_PROBABILITY
    facial_hair, facial_hair_color = _pick(rng, _FACIAL_HAIR), _pick(rng, _HAIR_COLORS)
    has_facial_hair = rng.random() < FACIAL_HAIR_PROBABILITY
    glasses = _pick(rng, _GLASSES)
    has_glasses = rng.random() < GLASSES_PROBABILITY
    if wears_hat:
        a.update(hair=NONE, hair_color=NONE, hat=hat, hat_color=hat_color)
    kind, top = ("hat", a["hat"]) if wears_hat else ("hair", a["hair"])
    if has_facial_hair and _top_supports(kind, top, "Facial-Hair"):
        a.update(facial_hair=facial_hair, facial_hair_color=facial_hair_color)
    if has_glasses and _top_supports(kind, top, "Accessory"):
        a["accessory"] = glasses
    a.update(_flags(a))
    return a


def _flags(a: dict[str, str]) -> dict[str, str]:
    hair_visible = a["hat"] == NONE and a["hair"] != "no_hair"
    flags = {
        "Bald": a["hat"] == NONE and a["hair"] == "no_hair",
        "Eyeglasses": a["accessory"] != NONE,
        "Mustache": a["facial_hair"] in _MOUSTACHES,
        "No_Beard": a["facial_hair"] not in _BEARDS,
        "Smiling": a["mouth"] in _SMILING_MOUTHS,
        "Wearing_Hat": a["hat"] != NONE,
    }
    for name, colours in _HAIR_COLOR_FLAGS.items():
        flags[name] = hair_visible and a["hair_color"] in colours
    return {name: "1" if flags[name] else "0" for name in FLAG_NAMES}


def avatar_svg(attributes: dict[str, str]) -> str:
    """The framed SVG (square viewBox around the head, transparent background) of an avatar with these labels."""
    import python_avatars as pa

    a = attributes
    if a["hat"] != NONE:
        top = pa.HatType(a["hat"])
    else:
        top = pa.HairType("no_hair" if a["hair"] == NONE else a["hair"])
    avatar = pa.Avatar(
        style=pa.AvatarStyle.TRANSPARENT,
        top=top,
        hat_color=_CLOTHING_COLORS.get(a["hat_color"], _CLOTHING_COLORS["heather"]),
        eyebrows=pa.EyebrowType(a["eyebrows"]),
        eyes=pa.EyeType(a["eyes"]),
        nose=pa.NoseType(a["nose"]),
        mouth=pa.MouthType(a["mouth"]),
        facial_hair=pa.FacialHairType("" if a["facial_hair"] == NONE else a["facial_hair"]),
        skin_color=_SKIN[a["skin"]],
        hair_color=_HAIR_COLORS.get(a["hair_color"], _HAIR_COLORS["brown"]),
        facial_hair_color=_HAIR_COLORS.get(a["facial_hair_color"], _HAIR_COLORS["brown"]),
        accessory=pa.AccessoryType("" if a["accessory"] == NONE else a["accessory"]),
        clothing=pa.ClothingType(a["clothing"]),
        clothing_color=_CLOTHING_COLORS[a["clothing_color"]],
    )
    svg = avatar.render()
    x, y, side = FRAME
    framed, count = re.subn(r'width="264px" height="280px" viewBox="0 0 264 280"',
                            f'width="{side}px" height="{side}px" viewBox="{x} {y} {side} {side}"', svg, count=1)
    if count != 1:
        raise RuntimeError("python-avatars changed its SVG template; update dcgan.avatars.FRAME")
    return framed


def render_avatar(attributes: dict[str, str], size: int = 64) -> np.ndarray:
    """Render an avatar to a size×size×3 uint8 RGB array on its background colour."""
    import resvg_py

    png = resvg_py.svg_to_bytes(svg_string=avatar_svg(attributes), width=size, height=size,
                                background=BACKGROUNDS[attributes["background"]], skip_system_fonts=True)
    image = Image.open(io.BytesIO(png))
    return np.asarray(image.convert("RGB"))


def generate_avatar(seed: int, index: int, size: int = 64) -> tuple[np.ndarray, dict[str, str]]:
    """Avatar `index` of `seed`: (size×size×3 uint8 image, attribute labels)."""
    attributes = avatar_attributes(seed, index)
    return render_avatar(attributes, size), attributes


def iter_avatars(n: int, seed: int = 0, size: int = 64, start: int = 0) -> Iterator[tuple[str, np.ndarray,
                                                                                           dict[str, str]]]:
    """(id, image, labels) for avatars start..start+n-1 of `seed`."""
    for index in range(start, start + n):
        image, attributes = generate_avatar(seed, index, size)
        yield avatar_id(seed, index), image, attributes


def avatar_array(n: int, seed: int = 0, size: int = 64) -> tuple[np.ndarray, list[dict[str, str]]]:
    """N×size×size×3 uint8 images and their labels (for quick experiments; ingest renders them in parallel)."""
    images, labels = [], []
    for _, image, attributes in iter_avatars(n, seed, size):
        images.append(image)
        labels.append(attributes)
    return np.stack(images), labels
