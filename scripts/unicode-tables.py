#!/usr/bin/env python3
"""Generates src/request/unicode_tables.rs from the Unicode Character Database.

`make unicode-tables` installs Debian's `unicode-data` package (the UCD's own text
files under /usr/share/unicode) and runs this script; the output is committed, so
neither the build nor the tests need the package. Nothing here is hand-picked but
U+2800 (BRAILLE PATTERN BLANK, which renders blank without belonging to a class).

Two tables of inclusive code point ranges, above ASCII:

PATH_REFUSED: what a request path may not contain, because an origin that compares
paths under Unicode case folding or compatibility normalization could read it as
something keyward did not judge:
  - every code point that one of these mappings, applied alone or after another
    (to a fixed point, depth 4), takes to an all-ASCII string, to nothing, or to a
    string holding ASCII punctuation, space or controls (`/`, `\\`, `.`, `%`, ...):
    NFKD (UnicodeData.txt decompositions, canonical and compatibility), the simple
    upper, lower and title case mappings (UnicodeData.txt), the full ones
    (SpecialCasing.txt, every condition and language included), case folding
    C+F, C+S and T (CaseFolding.txt), and NFKC_Casefold (DerivedNormalizationProps.txt);
    ſ (-> s), ı (-> I), İ (-> i), K (Kelvin, -> k), ﬁ (-> fi), ／ (-> /) are among them;
  - Default_Ignorable_Code_Point (DerivedCoreProperties.txt): origins that apply
    NFKC_Casefold delete them;
  - the general categories Cc, Cf, Cs, Co, Cn (unassigned: a later Unicode version
    may give them a folding), Zs, Zl, Zp.

INVISIBLE: what a name or category may not contain, because it is invisible or
changes the direction text is shown in: Default_Ignorable_Code_Point, general
category Cf, Zl, Zp, Bidi_Control (PropList.txt), and U+2800.
"""
import os
import sys

UCD = os.environ.get("UCD_DIR", "/usr/share/unicode")
OUT = sys.argv[1] if len(sys.argv) > 1 else "src/request/unicode_tables.rs"
MAX = 0x10FFFF


def lines(name):
    with open(os.path.join(UCD, name), encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                yield [p.strip() for p in line.split(";")]


def cps(text):
    return [int(x, 16) for x in text.split()] if text else []


def code_range(text):
    if ".." in text:
        a, b = text.split("..")
        return range(int(a, 16), int(b, 16) + 1)
    return range(int(text, 16), int(text, 16) + 1)


def version():
    with open(os.path.join(UCD, "ReadMe.txt"), encoding="utf-8") as f:
        for line in f:
            if "Version" in line and "of the Unicode Standard" in line:
                return line.split("Version", 1)[1].split()[0]
    return "unknown version"


category = {}
decomposition = {}
simple = {"upper": {}, "lower": {}, "title": {}}
first = None
for p in lines("UnicodeData.txt"):
    cp, name, gc = int(p[0], 16), p[1], p[2]
    if name.endswith(", First>"):
        first = cp
        continue
    if name.endswith(", Last>"):
        for c in range(first, cp + 1):
            category[c] = gc
        first = None
        continue
    category[cp] = gc
    d = p[5]
    if d:
        if d.startswith("<"):
            d = d.split(">", 1)[1]
        decomposition[cp] = cps(d)
    for field, kind in ((12, "upper"), (13, "lower"), (14, "title")):
        if p[field]:
            simple[kind][cp] = [int(p[field], 16)]

# SpecialCasing: code; lower; title; upper; (condition;)? Every line, conditional
# ones too (Turkic and Lithuanian rules are what some origins apply). A code point
# with several lines gets one table per line: special[i] holds each one's i-th.
#
# The lines that delete U+0307 COMBINING DOT ABOVE in a context (Lithuanian after
# a Soft_Dotted letter, Turkish and Azeri after I) cannot be a per-code-point rule:
# they become DOT_ABOVE_DROPPED_AFTER, the ASCII letters after which U+0307 is
# refused (a mark after anything else leaves the folded string non-ASCII).
special = []
count = {}
dropped_after = set()
for p in lines("SpecialCasing.txt"):
    cp = int(p[0], 16)
    if cp == 0x0307 and len(p) > 4 and not all(p[1:4]):
        for condition in p[4].split():
            if condition == "After_I":
                dropped_after.add("I")
            elif condition == "After_Soft_Dotted":
                dropped_after.add("soft_dotted")
        continue
    i = count.get(cp, 0)
    count[cp] = i + 1
    while len(special) <= i:
        special.append({"lower": {}, "title": {}, "upper": {}})
    for kind, field in (("lower", 1), ("title", 2), ("upper", 3)):
        special[i][kind][cp] = cps(p[field])

folds = {"C": {}, "F": {}, "S": {}, "T": {}}
for p in lines("CaseFolding.txt"):
    folds[p[1]][int(p[0], 16)] = cps(p[2])

nfkc_cf = {}
for p in lines("DerivedNormalizationProps.txt"):
    if len(p) >= 3 and p[1] == "NFKC_CF":
        for c in code_range(p[0]):
            nfkc_cf[c] = cps(p[2])

default_ignorable = set()
for p in lines("DerivedCoreProperties.txt"):
    if p[1] == "Default_Ignorable_Code_Point":
        default_ignorable.update(code_range(p[0]))

bidi_control = set()
soft_dotted = set()
for p in lines("PropList.txt"):
    if p[1] == "Bidi_Control":
        bidi_control.update(code_range(p[0]))
    if p[1] == "Soft_Dotted":
        soft_dotted.update(code_range(p[0]))
if "soft_dotted" in dropped_after:
    dropped_after.discard("soft_dotted")
    dropped_after.update(chr(c) for c in soft_dotted if c < 0x80)


def nfkd_char(c, depth=0):
    if c in decomposition and depth < 20:
        out = []
        for d in decomposition[c]:
            out.extend(nfkd_char(d, depth + 1))
        return out
    return [c]


def per_char(table):
    return lambda s: tuple(x for c in s for x in table.get(c, [c]))


mappings = [
    lambda s: tuple(x for c in s for x in nfkd_char(c)),
    per_char(simple["upper"]),
    per_char(simple["lower"]),
    per_char(simple["title"]),
    per_char({**folds["C"], **folds["F"]}),
    per_char({**folds["C"], **folds["S"]}),
    per_char({**folds["C"], **folds["T"]}),
    per_char(nfkc_cf),
]
for kind in ("upper", "lower", "title"):
    for entry in special:
        mappings.append(per_char({**simple[kind], **entry[kind]}))


def dangerous(s):
    if not s:
        return True
    if all(c < 0x80 for c in s):
        return True
    return any(c < 0x80 and not chr(c).isalnum() for c in s)


def folds_to_ascii(c):
    seen = {(c,)}
    frontier = {(c,)}
    for _ in range(4):
        nxt = set()
        for s in frontier:
            for m in mappings:
                r = m(s)
                if r not in seen:
                    if dangerous(r):
                        return True
                    nxt.add(r)
        seen |= nxt
        frontier = nxt
        if not frontier:
            break
    return False


# Mappings only ever touch code points that appear in some table: the rest map to
# themselves, and need no closure.
mapped = set(decomposition) | set(nfkc_cf)
for t in list(simple.values()) + list(folds.values()):
    mapped |= set(t)
for entry in special:
    for t in entry.values():
        mapped |= set(t)

REFUSED_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp"}
path_refused = []
invisible = []
for c in range(0x80, MAX + 1):
    gc = category.get(c, "Cn")
    refused = gc in REFUSED_CATEGORIES or c in default_ignorable
    if not refused and c in mapped:
        refused = folds_to_ascii(c)
    if refused:
        path_refused.append(c)
    if c in default_ignorable or gc in ("Cf", "Zl", "Zp") or c in bidi_control or c == 0x2800:
        invisible.append(c)


def ranges(points):
    out = []
    for c in points:
        if out and out[-1][1] == c - 1:
            out[-1][1] = c
        else:
            out.append([c, c])
    return out


def table(name, doc, points):
    rs = ranges(points)
    cells = [f"(0x{a:04X}, 0x{b:04X})," for a, b in rs]
    body = "\n".join("    " + " ".join(cells[i : i + 5]) for i in range(0, len(cells), 5))
    return (
        f"/// {doc} ({len(rs)} ranges)\n#[rustfmt::skip]\n"
        f"pub const {name}: &[(u32, u32)] = &[\n{body}\n];\n"
    )


with open(OUT, "w", encoding="utf-8") as f:
    f.write(
        "//! Generated by `scripts/unicode-tables.py` (`make unicode-tables`) from the Unicode\n"
        f"//! Character Database {version()} (Debian's `unicode-data`: UnicodeData.txt,\n"
        "//! SpecialCasing.txt, CaseFolding.txt, DerivedNormalizationProps.txt,\n"
        "//! DerivedCoreProperties.txt, PropList.txt). Do not edit: the script says what each\n"
        "//! table holds and why.\n\n"
    )
    f.write(table("PATH_REFUSED", "Code points a request path may not hold: inclusive ranges, sorted.", path_refused))
    f.write("\n")
    f.write(table("INVISIBLE", "Code points a name or category may not hold: inclusive ranges, sorted.", invisible))
    letters = "".join(sorted(dropped_after))
    f.write(
        "\n/// The ASCII letters after which U+0307 COMBINING DOT ABOVE is refused in a path\n"
        "/// (SpecialCasing.txt deletes it there in Lithuanian and Turkish casing).\n"
        f'pub const DOT_ABOVE_DROPPED_AFTER: &[u8] = b"{letters}";\n'
    )
print(f"{OUT}: {len(ranges(path_refused))} path ranges, {len(ranges(invisible))} invisible ranges")
