"""Deterministic synthetic chest X-ray + report dataset in the exact format of the Kaggle Indiana release.

Each uid is normal (p=0.36) or abnormal with 1-2 findings among opacity, cardiomegaly and pleural
effusion. Both modalities are informative but imperfect, and their failures are independent:
about 40 % of abnormal studies are drawn SUBTLE (barely visible in the images, and normal heart sizes
overlap mild cardiomegaly) and, independently, about 12 % of abnormal studies get a VAGUE report (reads
like a normal study or a non-committal one). Every uid draws from its own ``default_rng([seed, uid])``,
so the dataset for n uids is a prefix of the one for more uids.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

P_ABNORMAL = 0.64
P_SUBTLE = 0.40
P_VAGUE = 0.12
KINDS = ("opacity", "cardiomegaly", "effusion")
SIDES = ("right", "left")
LOBES = {"right": ("upper", "middle", "lower"), "left": ("upper", "lingula", "lower")}
LUNG_X = 0.41
LOBE_Y = {"upper": -0.28, "middle": 0.08, "lingula": 0.08, "lower": 0.3}

HEART_OK = (
    "the heart is normal in size.", "heart size is normal.",
    "the cardiomediastinal silhouette is within normal limits.", "normal heart size and mediastinal contours.",
    "the cardiac silhouette is normal in size and contour.",
    "heart size and pulmonary vascularity appear within normal limits.", "the heart and mediastinum are normal.",
    "cardiomediastinal silhouette is stable and unremarkable.", "normal cardiac and mediastinal contours.",
)
LUNGS_OK = (
    "the lungs are clear.", "lungs are clear bilaterally.", "no focal airspace consolidation.",
    "no focal airspace disease.", "the lungs are clear without focal consolidation.", "no focal consolidation is seen.",
    "the lungs are well expanded and clear.", "no focal infiltrate.", "lungs are hyperexpanded but clear.",
)
PLEURA_OK = (
    "no pleural effusion or pneumothorax.", "there is no pneumothorax or pleural effusion.",
    "no pneumothorax or large pleural effusion.", "no evidence of pleural effusion.", "costophrenic angles are sharp.",
    "no pneumothorax.", "there is no effusion or pneumothorax.",
)
BONES = (
    "the osseous structures are intact.", "no acute bony abnormality.",
    "visualized osseous structures are unremarkable.",
    "XXXX are intact.", "mild degenerative changes of the thoracic spine.", "no acute osseous abnormality.",
)
IMPRESSION_OK = (
    "no acute cardiopulmonary abnormality.", "no acute cardiopulmonary disease.", "normal chest.", "no active disease.",
    "no acute cardiopulmonary process.", "negative chest XXXX.", "no acute disease.",
    "no acute radiographic abnormality.",
    "no evidence of active disease.", "normal chest x-XXXX.",
)
RESOLVED = (  # normal studies that name a finding only to say it is gone: traps for keyword rules
    ("interval resolution of the previously seen {side} lower lobe opacity.", "resolved {side} basilar opacity."),
    ("the previously noted {side} pleural effusion has resolved.", "resolution of {side} effusion. no acute disease."),
    ("heart size is upper limits of normal, unchanged.", "stable borderline heart size. no acute disease."),
)
VAGUE = (
    "comparison made to prior. clinical correlation recommended.", "limited study. XXXX technique.",
    "no significant interval change.", "stable appearance of the chest compared to prior.",
    "please see prior report.", "unchanged from prior examination.", "findings discussed with dr. XXXX.",
    "exam limited by patient positioning. recommend followup if clinically indicated.",
    "stable chest radiograph.", "little change from XXXX.",
)
INDICATIONS = (
    "chest pain", "dyspnea", "shortness of breath", "cough", "XXXX-year-old male with cough",
    "XXXX-year-old female with chest pain", "preop", "pre-operative evaluation", "fever", "follow-up",
    "history of hypertension", "XXXX-year-old male, XXXX", "positive PPD", "routine exam", "weakness",
    "evaluate for pneumonia", "XXXX-year-old female with shortness of breath", "syncope", "tachycardia",
)
INDICATIONS_FOR = {
    "opacity": ("fever and productive cough", "cough, fever", "evaluate for pneumonia, XXXX"),
    "cardiomegaly": ("congestive heart failure", "XXXX-year-old with CHF", "leg swelling, dyspnea"),
    "effusion": ("decreased breath sounds", "pleuritic chest pain", "dyspnea on exertion"),
}
COMPARISONS = ("none.", "XXXX", "chest radiographs XXXX.", "prior study from XXXX.", "PA and lateral chest XXXX.",
               "none")
IMAGE_TITLES = ("Xray Chest PA and Lateral", "Xray Chest PA and Lateral", "Chest, 2 views, frontal and lateral",
                "PA and lateral views of the chest XXXX")
PROBLEM_NAMES = {"opacity": ("Opacity", "Airspace Disease", "Consolidation"), "cardiomegaly": ("Cardiomegaly",),
                 "effusion": ("Pleural Effusion",)}


def _pick(rng: np.random.Generator, options: tuple) -> object:
    """Uniform choice from a tuple (works for tuples of tuples)."""
    return options[int(rng.integers(len(options)))]


def _grade(severity: float, mild: tuple[str, ...], moderate: tuple[str, ...], severe: tuple[str, ...]) -> tuple:
    """The adjective set matching a severity in [0, 1]."""
    return mild if severity < 0.35 else moderate if severity < 0.7 else severe


def _finding_text(rng: np.random.Generator, kind: str, f: dict) -> tuple[str, str]:
    """A (findings sentence, impression phrase) describing one finding."""
    sev = f["severity"]
    if kind == "cardiomegaly":
        adv = _pick(rng, _grade(sev, ("mildly", "slightly", ""), ("moderately",), ("markedly", "severely")))
        adj = _pick(rng, _grade(sev, ("mild", "borderline", ""), ("moderate",), ("marked", "severe")))
        sentence = _pick(rng, (f"the heart is {adv} enlarged.", f"{adj} cardiomegaly.",
                               "the cardiac silhouette is enlarged.", f"heart size is {adv} increased.",
                               f"there is {adj} enlargement of the cardiac silhouette.", f"stable {adj} cardiomegaly."))
        return sentence, _pick(rng, ("cardiomegaly.", f"{adj} cardiomegaly without acute disease.", "enlarged heart.",
                                     f"{adj} cardiomegaly."))
    side = f["side"]
    if kind == "effusion":
        size = _pick(rng, _grade(sev, ("small", "trace", "tiny"), ("moderate", "small to moderate"), ("large",)))
        sentence = _pick(rng, (f"{size} {side} pleural effusion.", f"there is a {size} {side} pleural effusion.",
                               f"blunting of the {side} costophrenic angle consistent with {size} effusion.",
                               f"{size} {side}-sided pleural effusion with adjacent atelectasis."))
        return sentence, _pick(rng, (f"{size} {side} pleural effusion.", f"{side} effusion.",
                                     f"{side} pleural effusion, XXXX infection."))
    lobe = f["lobe"]
    where = "lingula" if lobe == "lingula" else _pick(rng, (f"{side} {lobe} lobe", f"{side} {lobe} lung zone"))
    if lobe == "lower":
        where = _pick(rng, (where, f"{side} base", f"{side} lung base"))
    quality = _pick(rng, _grade(sev, ("faint", "subtle", "minimal", "patchy"), ("patchy", "focal"),
                                ("dense", "confluent")))
    sentence = _pick(rng, (f"there is a {quality} {where} airspace opacity.", f"focal consolidation in the {where}.",
                           f"{quality} opacity in the {where} concerning for pneumonia.",
                           f"airspace disease in the {where}.", f"{quality} density in the {where}."))
    return sentence, _pick(rng, (f"{where} pneumonia.", f"{where} airspace disease.",
                                 "focal opacity, possibly pneumonia.", f"consolidation in the {where}.",
                                 f"{quality} {where} opacity."))


def _normal_report(rng: np.random.Generator) -> tuple[object, str]:
    """(findings, impression) of a normal-reading study, sometimes vague or naming a resolved finding."""
    u = rng.random()
    if u < 0.07:
        return (np.nan if rng.random() < 0.5 else _pick(rng, VAGUE)), _pick(rng, VAGUE)
    if u < 0.12:
        findings, impression = _pick(rng, RESOLVED)
        side = _pick(rng, SIDES)
        return findings.format(side=side), impression.format(side=side)
    findings = [_pick(rng, HEART_OK), _pick(rng, LUNGS_OK), _pick(rng, PLEURA_OK)]
    if rng.random() < 0.5:
        findings.append(_pick(rng, BONES))
    return (np.nan if rng.random() < 0.12 else " ".join(findings)), _pick(rng, IMPRESSION_OK)


def _abnormal_report(rng: np.random.Generator, findings: dict[str, dict]) -> tuple[object, str]:
    """(findings, impression) of a report that names every finding."""
    texts = {kind: _finding_text(rng, kind, f) for kind, f in findings.items()}
    body = [texts["cardiomegaly"][0] if "cardiomegaly" in texts else _pick(rng, HEART_OK),
            texts["opacity"][0] if "opacity" in texts else _pick(rng, LUNGS_OK),
            texts["effusion"][0] if "effusion" in texts else _pick(rng, PLEURA_OK)]
    if rng.random() < 0.4:
        body.append(_pick(rng, BONES))
    phrases = [texts[k][1] for k in KINDS if k in texts]
    if len(phrases) > 1 and rng.random() < 0.5:
        phrases = [f"{i}. {p}" for i, p in enumerate(phrases, 1)]
    if rng.random() < 0.1:
        return np.nan, " ".join(phrases)
    return " ".join(body), " ".join(phrases)


def _sentence_case(text: object) -> object:
    """Capitalise each sentence like the real reports (NaN passes through)."""
    if not isinstance(text, str):
        return text
    return ". ".join(s[:1].upper() + s[1:] for s in " ".join(text.split()).split(". "))


def _ellipse(x: np.ndarray, y: np.ndarray, cx: float, cy: float, rx: float, ry: float, edge: float) -> np.ndarray:
    """Soft (anti-aliased) filled ellipse mask in [0, 1]."""
    r = np.sqrt(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2)
    return 0.5 + 0.5 * np.tanh((1.0 - r) / (2.0 * edge))


def _blob(x: np.ndarray, y: np.ndarray, cx: float, cy: float, sigma: float) -> np.ndarray:
    """Gaussian bump with peak 1."""
    return np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2.0 * sigma**2))


def _blur(img: np.ndarray, sigma_px: float) -> np.ndarray:
    """Separable gaussian blur with edge padding (vectorised shifts, no per-pixel loops)."""
    radius = max(1, int(3 * sigma_px))
    taps = np.exp(-(np.arange(-radius, radius + 1) ** 2) / (2 * sigma_px**2))
    taps /= taps.sum()
    for axis in (0, 1):
        pad = [(radius, radius) if a == axis else (0, 0) for a in (0, 1)]
        padded = np.pad(img, pad, mode="edge")
        n = img.shape[axis]
        img = sum(w * np.take(padded, np.arange(i, i + n), axis=axis) for i, w in enumerate(taps))
    return img


def _grid(rng: np.random.Generator, size: int, anatomy: dict) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [-1, 1], moved into the patient frame (scale, shift, slight rotation)."""
    t = (np.arange(size) + 0.5) / size * 2.0 - 1.0
    gx, gy = np.meshgrid(t, t)
    angle = rng.normal(0.0, 0.04)
    dx, dy = rng.normal(0.0, 0.04, size=2)
    c, s = np.cos(angle), np.sin(angle)
    x, y = (gx - dx) / anatomy["scale"], (gy - dy) / anatomy["scale"]
    return c * x + s * y, -s * x + c * y


def _finish(rng: np.random.Generator, density: np.ndarray, anatomy: dict) -> np.ndarray:
    """Exposure, blur and noise: density map -> 8-bit image."""
    size = density.shape[0]
    img = np.clip(anatomy["gain"] * density + anatomy["offset"], 0.0, 1.0) ** anatomy["gamma"]
    img = _blur(img, anatomy["blur"] * size / 128.0)
    img = img + rng.normal(0.0, anatomy["noise"], size=img.shape)
    return np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)


def _frontal(rng: np.random.Generator, size: int, anatomy: dict, findings: dict[str, dict]) -> np.ndarray:
    """Draw a PA view: body, lungs (patient right = image left), heart, spine, ribs, clavicles, variants, findings."""
    x, y = _grid(rng, size, anatomy)
    edge = max(0.02, 1.5 / size)
    body = np.maximum(_ellipse(x, y, 0.0, 0.15, 0.88, 1.05, edge), _ellipse(x, y, 0.0, -0.6, 0.98, 0.32, edge))
    body = np.maximum(body, _ellipse(x, y, 0.0, -1.0, 0.2, 0.4, edge))
    lw, lung_y, lung_ry = anatomy["lung_w"], -0.03, 0.56
    lungs = {"right": _ellipse(x, y, -LUNG_X, lung_y, 0.3 * lw, lung_ry, edge),
             "left": _ellipse(x, y, LUNG_X, lung_y + 0.02, 0.28 * lw, lung_ry - 0.02, edge)}
    heart_w = anatomy["heart_w"] + findings.get("cardiomegaly", {}).get("grow", 0.0)
    heart = _ellipse(x, y, 0.05 + 0.35 * (heart_w - 0.29), 0.31, heart_w, 0.21, edge)
    lung = (lungs["right"] + lungs["left"]) * (1.0 - heart)
    spine = _ellipse(x, y, 0.0, 0.0, 0.06, 1.6, edge) * (0.8 + 0.2 * np.cos(2 * np.pi * y / 0.12))
    mediastinum = _ellipse(x, y, 0.0, -0.25, 0.11, 0.5, edge)
    ribs = (0.5 + 0.5 * np.cos(2 * np.pi * (y - 0.35 * x**2) / 0.17)) ** 6 * lung
    clavicles = _ellipse(np.abs(x), y - 0.18 * np.abs(x), 0.38, -0.68, 0.3, 0.025, edge)
    density = (0.55 * body + 0.12 * mediastinum + 0.18 * spine + 0.12 * heart + 0.08 * ribs + 0.15 * clavicles
               - 0.38 * anatomy["air"] * lung)
    breasts = sum(_ellipse(x, y, side * 0.45, 0.55, 0.34, 0.28, 4 * edge) for side in (-1, 1))
    density = density + anatomy["breast"] * breasts + anatomy["granuloma"] * _blob(x, y, *anatomy["granuloma_at"], 0.02)
    if "opacity" in findings:
        f = findings["opacity"]
        cx = (-LUNG_X if f["side"] == "right" else LUNG_X) + f["dx"] * 0.14
        spot = sum(_blob(x, y, cx + ox, LOBE_Y[f["lobe"]] + oy, f["sigma"]) for ox, oy in f["lumps"])
        density = density + f["amp"] * np.minimum(spot, 1.0) * lungs[f["side"]]
    if "effusion" in findings:
        f = findings["effusion"]
        lateral = np.clip((np.abs(x) - LUNG_X) / 0.3, 0.0, 1.0)
        level = lung_y + lung_ry - f["height"] * (1.0 + 0.8 * lateral)
        fluid = (0.5 + 0.5 * np.tanh((y - level) / (2 * edge))) * lungs[f["side"]]
        density = density + f["amp"] * fluid
    return _finish(rng, density, anatomy)


def _lateral(rng: np.random.Generator, size: int, anatomy: dict, findings: dict[str, dict]) -> np.ndarray:
    """Draw a lateral view facing image left: one lung field, anterior heart, posterior spine, findings."""
    x, y = _grid(rng, size, anatomy)
    edge = max(0.02, 1.5 / size)
    body = np.maximum(_ellipse(x, y, 0.0, 0.12, 0.72, 1.05, edge), _ellipse(x, y, 0.1, -0.9, 0.35, 0.4, edge))
    lung = _ellipse(x, y, -0.02, -0.02, 0.46 * anatomy["lung_w"], 0.6, edge)
    grow = findings.get("cardiomegaly", {}).get("grow", 0.0)
    heart_w = anatomy["heart_w"] + grow
    heart = _ellipse(x, y, -0.22 - 0.4 * grow, 0.33, 0.26 * heart_w / 0.29, 0.24, edge)
    vertebrae = _ellipse(x, y, 0.47, 0.0, 0.09, 1.6, edge) * (0.75 + 0.25 * (np.cos(2 * np.pi * y / 0.13) > -0.4))
    sternum = _ellipse(x, y, -0.6, -0.1, 0.03, 0.45, edge)
    air = lung * (1.0 - heart) * (1.0 - vertebrae)
    density = 0.55 * body + 0.25 * vertebrae + 0.1 * sternum + 0.1 * heart - 0.33 * anatomy["air"] * air
    if "opacity" in findings:
        f = findings["opacity"]
        spot = sum(_blob(x, y, f["ap"] + ox, LOBE_Y[f["lobe"]] + oy, f["sigma"]) for ox, oy in f["lumps"])
        density = density + 0.8 * f["amp"] * np.minimum(spot, 1.0) * lung
    if "effusion" in findings:
        f = findings["effusion"]
        posterior = np.clip((x - 0.05) / 0.5, 0.0, 1.0)
        level = 0.58 - f["height"] * (0.6 + 1.2 * posterior)
        density = density + f["amp"] * (0.5 + 0.5 * np.tanh((y - level) / (2 * edge))) * lung
    return _finish(rng, density, anatomy)


def _draw_findings(rng: np.random.Generator) -> dict[str, dict]:
    """Latent findings of one abnormal study (1-2 kinds, shared severity regime)."""
    kinds = sorted(rng.choice(len(KINDS), size=1 + int(rng.random() < 0.35), replace=False))
    subtle = rng.random() < P_SUBTLE
    findings = {}
    for k in kinds:
        sev = float(rng.uniform(0.05, 0.25) if subtle else rng.uniform(0.4, 1.0))
        side = _pick(rng, SIDES)
        f = {"severity": sev, "side": side}
        if KINDS[k] == "opacity":
            f.update(lobe=_pick(rng, LOBES[side]), dx=float(rng.uniform(-1, 1)), ap=float(rng.uniform(-0.2, 0.35)),
                     sigma=0.06 + 0.08 * sev, amp=0.06 + 0.3 * sev,
                     lumps=[tuple(rng.normal(0.0, 0.06, size=2)) for _ in range(3)])
        elif KINDS[k] == "cardiomegaly":
            f["grow"] = 0.03 + 0.13 * sev
        else:
            f.update(height=0.04 + 0.22 * sev, amp=0.12 + 0.22 * sev)
        findings[KINDS[k]] = f
    return findings


def _study(seed: int, uid: int, size: int) -> tuple[dict, np.ndarray, np.ndarray]:
    """One uid's report row and its frontal and lateral images, from default_rng([seed, uid])."""
    rng = np.random.default_rng([seed, uid])
    findings = _draw_findings(rng) if rng.random() < P_ABNORMAL else {}
    vague = bool(findings) and rng.random() < P_VAGUE
    indication = _pick(rng, INDICATIONS)
    if not findings or (vague and rng.random() < 0.7):
        text_findings, impression = _normal_report(rng)
    elif vague:
        text_findings, impression = (np.nan if rng.random() < 0.5 else _pick(rng, VAGUE)), _pick(rng, VAGUE)
    else:
        text_findings, impression = _abnormal_report(rng, findings)
        if rng.random() < 0.25:
            indication = _pick(rng, INDICATIONS_FOR[_pick(rng, tuple(findings))])
    problems, mesh = "normal", "normal"
    if findings:
        names = {k: _pick(rng, PROBLEM_NAMES[k]) for k in findings}
        problems = ";".join(names.values())
        grades = {k: "mild" if f["severity"] < 0.35 else "moderate" for k, f in findings.items()}
        mesh = ";".join(f"Cardiomegaly/{grades[k]}" if k == "cardiomegaly" else f"{names[k]}/{f['side']}/{grades[k]}"
                        for k, f in findings.items())
    row = {
        "uid": uid, "MeSH": mesh, "Problems": problems, "image": _pick(rng, IMAGE_TITLES),
        "indication": np.nan if rng.random() < 0.03 else _sentence_case(indication) + ".",
        "comparison": np.nan if rng.random() < 0.4 else _sentence_case(_pick(rng, COMPARISONS)),
        "findings": _sentence_case(text_findings), "impression": _sentence_case(impression),
    }
    anatomy = {
        "scale": rng.uniform(0.88, 1.06), "lung_w": rng.uniform(0.9, 1.1), "air": rng.uniform(0.85, 1.15),
        "heart_w": float(np.clip(rng.normal(0.29, 0.025), 0.23, 0.36)), "gain": rng.uniform(0.85, 1.12),
        "offset": rng.uniform(-0.04, 0.05), "gamma": rng.uniform(0.8, 1.25), "noise": rng.uniform(0.01, 0.035),
        "blur": rng.uniform(0.4, 1.0), "breast": rng.uniform(0.03, 0.1) * (rng.random() < 0.35),
        "granuloma": 0.3 * (rng.random() < 0.15),
        "granuloma_at": (_pick(rng, (-1, 1)) * rng.uniform(0.2, 0.6), rng.uniform(-0.45, 0.4)),
    }
    return row, _frontal(rng, size, anatomy, findings), _lateral(rng, size, anatomy, findings)


def write_synthetic_indiana(out: str | Path, n: int, seed: int, image_size: int = 128, drop_views: int = 0,
                            first_uid: int = 1) -> Path:
    """Write n synthetic studies (uids first_uid..first_uid+n-1; 1..n by default) as an Indiana release folder;
    drop_views uids lose one view row. A later first_uid draws studies no default-numbered set holds (the clean
    held-out calibration samples of benchmark.evaluation.clinical)."""
    if n < 1 or seed < 0 or image_size < 8 or not 0 <= drop_views <= n:
        raise ValueError(f"need n >= 1, seed >= 0, image_size >= 8, 0 <= drop_views <= n; got {n}, {seed}, "
                         f"{image_size}, {drop_views}")
    out = Path(out)
    images = out / "images" / "images_normalized"
    images.mkdir(parents=True, exist_ok=True)
    picker = np.random.default_rng([seed, 0])
    dropped = {int(u) + first_uid: int(picker.integers(2)) for u in picker.choice(n, size=drop_views, replace=False)}
    reports, projections = [], []
    for uid in range(first_uid, first_uid + n):
        row, frontal, lateral = _study(seed, uid, image_size)
        reports.append(row)
        for v, (view, series, pixels) in enumerate((("Frontal", 4001, frontal), ("Lateral", 3001, lateral))):
            if dropped.get(uid) == v:
                continue
            name = f"{uid}_IM-{uid % 10000:04d}-{series}.dcm.png"
            Image.fromarray(pixels).save(images / name, format="PNG")
            projections.append({"uid": uid, "filename": name, "projection": view})
    pd.DataFrame(reports).to_csv(out / "indiana_reports.csv", index=False, lineterminator="\n")
    pd.DataFrame(projections).to_csv(out / "indiana_projections.csv", index=False, lineterminator="\n")
    return out
