"""Human3.6M cameras (published calibration) and action names.

The numbers are the public Human3.6M calibration as distributed with
VideoPose3D: four cameras with pixel intrinsics (shared by all subjects) and,
per subject, each camera's orientation (a unit quaternion `(w, x, y, z)`
rotating camera axes into world axes) and its centre in the world (mm).
`cameras()` turns them into the extrinsics of `xsup.geometry.camera`
(`x_cam = rot @ x_world + trans`).

Subjects S2, S3 and S4 have no published extrinsics and are not listed.
Cameras of other subjects (other captures written in VideoPose3D's format)
come from a JSON file with the same fields (`load_cameras_file`).
"""

import json
import os
import re
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from xsup.geometry import camera as camera_lib
from xsup.geometry import rotations

# The 15 Human3.6M actions (canonical names, the order of per-action tables).
ACTIONS: Tuple[str, ...] = (
    "Directions", "Discussion", "Eating", "Greeting", "Phoning", "Posing",
    "Purchases", "Sitting", "SittingDown", "Smoking", "TakingPhoto",
    "Waiting", "Walking", "WalkDog", "WalkTogether")

# Other spellings found in Human3.6M / VideoPose3D file names.
_ACTION_ALIASES: Dict[str, str] = {
    "Photo": "TakingPhoto",
    "WalkingDog": "WalkDog",
    "WalkingTogether": "WalkTogether",
}

SUBJECTS: Tuple[str, ...] = ("S1", "S5", "S6", "S7", "S8", "S9", "S11")
TRAIN_SUBJECTS: Tuple[str, ...] = ("S1", "S5", "S6", "S7", "S8")
TEST_SUBJECTS: Tuple[str, ...] = ("S9", "S11")

NUM_CAMERAS = 4


class Intrinsics(NamedTuple):
  """Calibration of one Human3.6M camera (pixels)."""
  id: str
  center: Tuple[float, float]
  focal_length: Tuple[float, float]
  radial_distortion: Tuple[float, float, float]
  tangential_distortion: Tuple[float, float]
  res_w: int
  res_h: int
  azimuth: float  # degrees; for plotting only


class Extrinsics(NamedTuple):
  """Pose of one camera for one subject's recordings."""
  orientation: Tuple[float, float, float, float]  # (w, x, y, z) camera->world
  translation: Tuple[float, float, float]  # camera centre, world mm


INTRINSICS: Tuple[Intrinsics, ...] = (
    Intrinsics("54138969", (512.54150390625, 515.4514770507812),
               (1145.0494384765625, 1143.7811279296875),
               (-0.20709891617298126, 0.24777518212795258,
                -0.0030751503072679043),
               (-0.0009756988729350269, -0.00142447161488235),
               1000, 1002, 70.0),
    Intrinsics("55011271", (508.8486328125, 508.0649108886719),
               (1149.6756591796875, 1147.5916748046875),
               (-0.1942136287689209, 0.2404085397720337,
                0.006819975562393665),
               (-0.0016190266469493508, -0.0027408944442868233),
               1000, 1000, -70.0),
    Intrinsics("58860488", (519.8158569335938, 501.40264892578125),
               (1149.1407470703125, 1148.7989501953125),
               (-0.2083381861448288, 0.25548800826072693,
                -0.0024604974314570427),
               (0.0014843869721516967, -0.0007599993259645998),
               1000, 1000, 110.0),
    Intrinsics("60457274", (514.9682006835938, 501.88201904296875),
               (1145.5113525390625, 1144.77392578125),
               (-0.198384091258049, 0.21832367777824402,
                -0.008947807364165783),
               (-0.0005872055771760643, -0.0018133620033040643),
               1000, 1002, -110.0),
)


def _ext(q, t) -> Extrinsics:
  return Extrinsics(tuple(q), tuple(t))


EXTRINSICS: Dict[str, Tuple[Extrinsics, ...]] = {
    "S1": (
        _ext((0.1407056450843811, -0.1500701755285263, -0.755240797996521,
              0.6223280429840088),
             (1841.1070556640625, 4955.28466796875, 1563.4454345703125)),
        _ext((0.6157187819480896, -0.764836311340332, -0.14833825826644897,
              0.11794740706682205),
             (1761.278564453125, -5078.0068359375, 1606.2650146484375)),
        _ext((0.14651472866535187, -0.14647851884365082, 0.7653023600578308,
              -0.6094175577163696),
             (-1846.7777099609375, 5215.04638671875, 1491.972412109375)),
        _ext((0.5834008455276489, -0.7853162288665771, 0.14548823237419128,
              -0.14749594032764435),
             (-1794.7896728515625, -3722.698974609375, 1574.8927001953125)),
    ),
    "S5": (
        _ext((0.1467377245426178, -0.162370964884758, -0.7551892995834351,
              0.6178938746452332),
             (2097.3916015625, 4880.94482421875, 1605.732421875)),
        _ext((0.6159758567810059, -0.7626792192459106, -0.15728192031383514,
              0.1189815029501915),
             (2031.7008056640625, -5167.93310546875, 1612.923095703125)),
        _ext((0.14291371405124664, -0.12907841801643372, 0.7678384780883789,
              -0.6110143065452576),
             (-1620.5948486328125, 5171.65869140625, 1496.43701171875)),
        _ext((0.5920479893684387, -0.7814217805862427, 0.1274748593568802,
              -0.15036417543888092),
             (-1637.1737060546875, -3867.3173828125, 1547.033203125)),
    ),
    "S6": (
        _ext((0.1337897777557373, -0.15692396461963654, -0.7571090459823608,
              0.6198879480361938),
             (1935.4517822265625, 4950.24560546875, 1618.0838623046875)),
        _ext((0.6147197484970093, -0.7628812789916992, -0.16174767911434174,
              0.11819244921207428),
             (1969.803955078125, -5128.73876953125, 1632.77880859375)),
        _ext((0.1529948115348816, -0.13529130816459656, 0.7646096348762512,
              -0.6112781167030334),
             (-1769.596435546875, 5185.361328125, 1476.993408203125)),
        _ext((0.5916101336479187, -0.7804774045944214, 0.12832270562648773,
              -0.1561593860387802),
             (-1721.668701171875, -3884.13134765625, 1540.4879150390625)),
    ),
    "S7": (
        _ext((0.1435241848230362, -0.1631336808204651, -0.7548328638076782,
              0.6188824772834778),
             (1974.512939453125, 4926.3544921875, 1597.8326416015625)),
        _ext((0.6141672730445862, -0.7638262510299683, -0.1596645563840866,
              0.1177929937839508),
             (1937.0584716796875, -5119.7900390625, 1631.5665283203125)),
        _ext((0.14550060033798218, -0.12874816358089447, 0.7660516500473022,
              -0.6127139329910278),
             (-1741.8111572265625, 5208.24951171875, 1464.8245849609375)),
        _ext((0.5912848114967346, -0.7821764349937439, 0.12445473670959473,
              -0.15196487307548523),
             (-1734.7105712890625, -3832.42138671875, 1548.5830078125)),
    ),
    "S8": (
        _ext((0.14110587537288666, -0.15589867532253265, -0.7561917304992676,
              0.619644045829773),
             (2150.65185546875, 4896.1611328125, 1611.9046630859375)),
        _ext((0.6169601678848267, -0.7647668123245239, -0.14846350252628326,
              0.11158157885074615),
             (2219.965576171875, -5148.453125, 1613.0440673828125)),
        _ext((0.1471444070339203, -0.13377119600772858, 0.7670128345489502,
              -0.6100369691848755),
             (-1571.2215576171875, 5137.0185546875, 1498.1761474609375)),
        _ext((0.5927824378013611, -0.7825870513916016, 0.12147816270589828,
              -0.14631995558738708),
             (-1476.913330078125, -3896.7412109375, 1547.97216796875)),
    ),
    "S9": (
        _ext((0.15540587902069092, -0.15548215806484222, -0.7532095313072205,
              0.6199594736099243),
             (2044.45849609375, 4935.1171875, 1481.2275390625)),
        _ext((0.618784487247467, -0.7634735107421875, -0.14132238924503326,
              0.11933968216180801),
             (1990.959716796875, -5123.810546875, 1568.8048095703125)),
        _ext((0.13357827067375183, -0.1367100477218628, 0.7689454555511475,
              -0.6100738644599915),
             (-1670.9921875, 5211.98583984375, 1528.387939453125)),
        _ext((0.5879399180412292, -0.7823407053947449, 0.1427614390850067,
              -0.14794869720935822),
             (-1696.04345703125, -3827.099853515625, 1591.4127197265625)),
    ),
    "S11": (
        _ext((0.15232472121715546, -0.15442320704460144, -0.7547563314437866,
              0.6191070079803467),
             (2098.440185546875, 4926.5546875, 1500.278564453125)),
        _ext((0.6189449429512024, -0.7600917220115662, -0.15300633013248444,
              0.1255258321762085),
             (2083.182373046875, -4912.1728515625, 1561.07861328125)),
        _ext((0.14943228662014008, -0.15650227665901184, 0.7681233882904053,
              -0.6026304364204407),
             (-1609.8153076171875, 5177.3359375, 1537.896728515625)),
        _ext((0.5894251465797424, -0.7818877100944519, 0.13991211354732513,
              -0.14715361595153809),
             (-1590.738037109375, -3854.1689453125, 1578.017578125)),
    ),
}


class Camera(NamedTuple):
  """One calibrated camera in the convention of `xsup.geometry.camera`.

  Attributes:
    rot: `[3, 3]` float32 world->camera rotation.
    trans: `[3]` float32 translation (metres by default, see `cameras`).
    focal: `[2]` float32 (fx, fy) pixels.
    center: `[2]` float32 (cx, cy) pixels.
    radial: `[3]` float32 (k1, k2, k3).
    tangential: `[2]` float32 (p1, p2).
    res: `(width, height)` pixels.
  """
  rot: np.ndarray
  trans: np.ndarray
  focal: np.ndarray
  center: np.ndarray
  radial: np.ndarray
  tangential: np.ndarray
  res: Tuple[int, int]


def _make_camera(intr: Intrinsics, ext: Extrinsics, units: str) -> Camera:
  """The `Camera` of published-style intrinsics and extrinsics."""
  if units not in ("m", "mm"):
    raise ValueError(f"units must be 'm' or 'mm', got {units!r}")
  orientation = rotations.quaternion_to_matrix(
      np.asarray(ext.orientation, np.float32))
  position = np.asarray(ext.translation, np.float32)
  if units == "m":
    position = position / 1000.0
  rot, trans = camera_lib.extrinsics_from_pose(orientation, position)
  return Camera(
      rot=np.asarray(rot, np.float32),
      trans=np.asarray(trans, np.float32),
      focal=np.asarray(intr.focal_length, np.float32),
      center=np.asarray(intr.center, np.float32),
      radial=np.asarray(intr.radial_distortion, np.float32),
      tangential=np.asarray(intr.tangential_distortion, np.float32),
      res=(intr.res_w, intr.res_h))


def camera(subject: str, index: int, units: str = "m") -> Camera:
  """The calibrated camera `index` (0-3) of `subject`.

  Args:
    subject: one of `SUBJECTS`, e.g. "S9".
    index: camera index 0-3 (VideoPose3D order, ids in `INTRINSICS`).
    units: "m" or "mm": units of `trans` (points must be in the same units).
  Returns:
    A `Camera` with `x_cam = rot @ x_world + trans`.
  """
  if subject not in EXTRINSICS:
    raise ValueError(f"No Human3.6M camera extrinsics for subject "
                     f"{subject!r}; known subjects: {sorted(EXTRINSICS)}")
  if not 0 <= index < NUM_CAMERAS:
    raise ValueError(f"Human3.6M camera index must be in 0..{NUM_CAMERAS - 1},"
                     f" got {index}")
  return _make_camera(INTRINSICS[index], EXTRINSICS[subject][index], units)


def cameras(subjects: Optional[Sequence[str]] = None, units: str = "m"
            ) -> Dict[str, List[Camera]]:
  """Calibrated cameras of each subject (all of `SUBJECTS` by default).

  Returns:
    subject -> list of 4 `Camera` (see `camera`).
  """
  subjects = SUBJECTS if subjects is None else subjects
  return {s: [camera(s, i, units) for i in range(NUM_CAMERAS)]
          for s in subjects}


def canonical_action(name: str) -> str:
  """Maps a Human3.6M / VideoPose3D sequence name to one of `ACTIONS`.

  Drops the take number ("Walking 1" -> "Walking", "Sitting_2" -> "Sitting")
  and resolves spelling variants ("Photo" and "TakingPhoto" ->
  "TakingPhoto", "WalkingDog" -> "WalkDog").

  Raises:
    ValueError: the name is not a Human3.6M action.
  """
  base = re.sub(r"[\s_\-]*\d+$", "", name.strip())
  base = _ACTION_ALIASES.get(base, base)
  if base not in ACTIONS:
    raise ValueError(f"Unknown Human3.6M action {name!r}; expected one of "
                     f"{ACTIONS} optionally followed by a take number")
  return base


def action_label(name: str) -> str:
  """The per-action table label of a sequence name: any name is accepted.

  The Human3.6M actions (with take numbers and spelling variants) map to
  their canonical names as in `canonical_action`; any other name (motion
  of other captures written in this format) is its own action, kept as it
  is (surrounding spaces removed).
  """
  try:
    return canonical_action(name)
  except ValueError:
    label = name.strip()
    if not label:
      raise ValueError("Empty action name") from None
    return label


# Fields of one camera in a cameras file: name -> (length or None for a
# scalar, required). The published table's fields; distortion may be left
# out (no distortion).
_CAMERA_FIELDS: Dict[str, Tuple[Optional[int], bool]] = {
    "id": (None, False),
    "center": (2, True),
    "focal_length": (2, True),
    "radial_distortion": (3, False),
    "tangential_distortion": (2, False),
    "res_w": (None, True),
    "res_h": (None, True),
    "azimuth": (None, False),
    "orientation": (4, True),
    "translation": (3, True),
}

CAMERAS_FILE_FORMAT = """\
A cameras file is JSON: {"<subject>": [<camera>, ...], ...}, one entry per
camera in the order of the 2D file's per-camera lists, each with the fields
of the published Human3.6M calibration: "center" [cx, cy] and
"focal_length" [fx, fy] (pixels), "res_w", "res_h" (pixels), "orientation"
(unit quaternion [w, x, y, z] rotating camera axes into world axes),
"translation" (camera centre in the world, mm), and optionally
"radial_distortion" [k1, k2, k3], "tangential_distortion" [p1, p2] (zeros
when absent), "id" and "azimuth"."""


def _field(entry: Dict[str, Any], name: str, where: str):
  """Validated value of field `name` of one camera entry (None if absent)."""
  length, required = _CAMERA_FIELDS[name]
  if name not in entry:
    if required:
      raise ValueError(f"{where}: missing field {name!r}.\n"
                       f"{CAMERAS_FILE_FORMAT}")
    return None
  value = entry[name]
  if name == "id":
    return str(value)
  try:
    arr = np.asarray(value, np.float64)
  except (TypeError, ValueError):
    arr = None
  shape = () if length is None else (length,)
  if arr is None or arr.shape != shape or not np.all(np.isfinite(arr)):
    expected = ("a finite number" if length is None else
                f"a list of {length} finite numbers")
    raise ValueError(f"{where}: field {name!r} must be {expected}, got "
                     f"{value!r}")
  return arr


def load_cameras_file(path: str, units: str = "m") -> Dict[str, List[Camera]]:
  """Reads a JSON cameras file (format: `CAMERAS_FILE_FORMAT`).

  Args:
    path: the file.
    units: "m" or "mm", units of each camera's `trans`.
  Returns:
    subject -> list of `Camera` (one per camera, in file order).
  Raises:
    FileNotFoundError, ValueError: naming the file, subject, camera and
      field.
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"Cameras file not found: {path}")
  try:
    with open(path) as f:
      data = json.load(f)
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise ValueError(f"{path}: not a readable JSON file ({e}).\n"
                     f"{CAMERAS_FILE_FORMAT}") from e
  if not isinstance(data, dict) or not data:
    raise ValueError(f"{path}: expected an object subject -> list of "
                     f"cameras.\n{CAMERAS_FILE_FORMAT}")
  out: Dict[str, List[Camera]] = {}
  for subject, entries in data.items():
    if not isinstance(entries, list) or not entries:
      raise ValueError(f"{path}: subject {subject!r} must map to a non-empty "
                       f"list of cameras.\n{CAMERAS_FILE_FORMAT}")
    out[str(subject)] = []
    for i, entry in enumerate(entries):
      where = f"{path}: subject {subject!r} camera {i}"
      if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected an object of camera fields, "
                         f"got {type(entry).__name__}")
      unknown = sorted(set(entry) - set(_CAMERA_FIELDS))
      if unknown:
        raise ValueError(f"{where}: unknown fields {unknown}; known: "
                         f"{sorted(_CAMERA_FIELDS)}")
      v = {name: _field(entry, name, where) for name in _CAMERA_FIELDS}
      for name in ("focal_length", "res_w", "res_h"):
        if np.any(v[name] <= 0):
          raise ValueError(f"{where}: field {name!r} must be positive, got "
                           f"{entry[name]!r}")
      norm = float(np.linalg.norm(v["orientation"]))
      if abs(norm - 1.0) > 1e-3:
        raise ValueError(f"{where}: field 'orientation' must be a unit "
                         f"quaternion [w, x, y, z], got norm {norm:.6g}")
      intr = Intrinsics(
          id=v["id"] or f"{subject}_{i}",
          center=tuple(v["center"]), focal_length=tuple(v["focal_length"]),
          radial_distortion=tuple(v["radial_distortion"]
                                  if v["radial_distortion"] is not None
                                  else np.zeros(3)),
          tangential_distortion=tuple(v["tangential_distortion"]
                                      if v["tangential_distortion"] is not None
                                      else np.zeros(2)),
          res_w=int(v["res_w"]), res_h=int(v["res_h"]),
          azimuth=float(v["azimuth"]) if v["azimuth"] is not None else 0.0)
      ext = Extrinsics(tuple(v["orientation"] / norm),
                       tuple(v["translation"]))
      out[str(subject)].append(_make_camera(intr, ext, units))
  return out
