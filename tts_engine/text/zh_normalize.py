"""Mandarin text normalization: written numbers and symbols -> the Hanzi a reader says.

"2024年3月15日" -> 二零二四年三月十五日, "14:30" -> 十四点三十分,
"¥12.5" -> 十二点五元, "35%" -> 百分之三十五, "3/4" -> 四分之三,
"-5℃" -> 负五摄氏度, "3-5kg" -> 三到五千克, "13812345678" -> 幺三八幺二三四五六七八.

Latin letters are left alone (English words are read by the English path);
digits next to them are read in Chinese ("iPhone 15" -> iPhone 十五).
The passes run in a fixed order: each consumes its digits before a later,
more general pass could misread them.
"""

from __future__ import annotations

import re
import unicodedata

import cn2an

__all__ = ["normalize_zh", "read_integer", "read_number", "read_digits"]

_DIGITS = "零一二三四五六七八九"
_PHONE_DIGITS = "零幺二三四五六七八九"


def read_digits(digits: str, phone: bool = False) -> str:
    """Digit by digit: 2024 -> 二零二四; in phone numbers 1 -> 幺."""
    table = _PHONE_DIGITS if phone else _DIGITS
    return "".join(table[int(d)] if d.isdigit() else "" for d in digits)


def read_integer(digits: str, liang: bool = True) -> str:
    """Cardinal reading: 112 -> 一百一十二; 2000 -> 两千 (a leading 二 before 百千万亿 is 两)."""
    digits = digits.replace(",", "").lstrip("0") or "0"
    if len(digits) > 16:
        return read_digits(digits)
    words = cn2an.an2cn(digits, "low")
    if liang and len(words) > 1 and words[0] == "二" and words[1] in "百千万亿":
        words = "两" + words[1:]
    return words


def read_number(text: str) -> str:
    """Integer or decimal, with sign: -3.25 -> 负三点二五."""
    sign = ""
    if text[:1] in "-−":
        sign, text = "负", text[1:]
    elif text[:1] == "+":
        sign, text = "正", text[1:]
    whole, _, frac = text.partition(".")
    out = read_integer(whole or "0")
    if frac:
        out += "点" + read_digits(frac)
    return sign + out


# ---------------------------------------------------------------------------
# Width and symbols
# ---------------------------------------------------------------------------

# Full-width ASCII letters, digits and the symbols numbers use become ASCII;
# Chinese punctuation (，。！？；：) stays for the phonemizer, except a colon
# between digits (14：30).
_NARROW = {chr(c): unicodedata.normalize("NFKC", chr(c)) for c in range(0xFF10, 0xFF1A)}
_NARROW.update({chr(c): chr(c - 0xFEE0) for c in range(0xFF21, 0xFF3B)})
_NARROW.update({chr(c): chr(c - 0xFEE0) for c in range(0xFF41, 0xFF5B)})
_NARROW.update({"％": "%", "＄": "$", "￥": "¥", "．": ".", "－": "-", "＋": "+", "／": "/",
                "～": "~", "〜": "~", "–": "-", "−": "-", "\u3000": " ", "＆": "&",
                "＠": "@", "＃": "#", "℉": "°F"})


def _narrow(text: str) -> str:
    text = "".join(_NARROW.get(ch, ch) for ch in text)
    return re.sub(r"(?<=\d)：(?=\d)", ":", text)


_NUM = r"\d+(?:,\d{3})*(?:\.\d+)?"
_SNUM = r"[-+]?" + _NUM

# ---------------------------------------------------------------------------
# Dates and times
# ---------------------------------------------------------------------------


def _ymd(y: str | None, m: str | None, d: str | None, day_word: str = "日") -> str:
    out = ""
    if y:
        out += read_digits(y) + "年"
    if m:
        out += read_integer(m, liang=False) + "月"
    if d:
        out += read_integer(d, liang=False) + day_word
    return out


def _valid(m: str, d: str) -> bool:
    return 1 <= int(m) <= 12 and 1 <= int(d) <= 31


_DATE_CN = re.compile(r"(?:(\d{4})年)?(\d{1,2})月(?:(\d{1,2})([日号]))?")
_YEAR_CN = re.compile(r"(?<!\d)(\d{4})年(?!代)")
_YEARS_CN = re.compile(r"(\d{4})年代")
_DATE_ISO = re.compile(r"(?<![\d.])(\d{4})([-/.])(\d{1,2})\2(\d{1,2})(?![\d])")


def _date_cn(m: re.Match[str]) -> str:
    return _ymd(m[1], m[2], m[3], m[4] or "日")


def _date_iso(m: re.Match[str]) -> str:
    if not _valid(m[3], m[4]):
        return m[0]
    return _ymd(m[1], m[3], m[4])


# "2023-2024赛季", "1998～2003年": two years, each read digit by digit.
_YEAR_RANGE = re.compile(r"(?<![\d.])((?:1[5-9]|20)\d{2})\s?[-~～至到]\s?((?:1[5-9]|20)\d{2})(?=\s?(?:年|赛季|学年|财年))")
# "v2.1.0", "192.168.1.1": three or more dotted parts are a version (or address), read part by part.
_DOTTED = re.compile(r"(?<![\d.])(\d+(?:\.\d+){2,})(?![\d.])")
# "2:0", "16:9" (not a clock time, which _TIME read first): a score or a ratio.
_RATIO = re.compile(r"(?<![\d:.])(\d{1,3}):(\d{1,3})(?![\d:.])")


def _dotted(m: re.Match[str]) -> str:
    return "点".join(read_digits(p) if p.startswith("0") and len(p) > 1 else read_integer(p, liang=False)
                    for p in m[1].split("."))


def _ratio(m: re.Match[str]) -> str:
    return read_integer(m[1], liang=False) + "比" + read_integer(m[2], liang=False)


_TIME = re.compile(r"(?<![\d:])([01]?\d|2[0-4])[:](\d{2})(?::(\d{2}))?(?![\d:])")


def _time(m: re.Match[str]) -> str:
    hour, minute, second = int(m[1]), int(m[2]), m[3]
    if minute > 59:
        return m[0]
    out = ("两" if hour == 2 else read_integer(str(hour), liang=False)) + "点"
    if minute == 0 and not second:
        return out + "整"
    out += (("零" + _DIGITS[minute]) if minute < 10 else read_integer(str(minute), liang=False)) + "分"
    if second:
        s = int(second)
        out += (("零" + _DIGITS[s]) if 0 < s < 10 else read_integer(str(s), liang=False)) + "秒"
    return out


# ---------------------------------------------------------------------------
# Phone numbers and codes (digit by digit)
# ---------------------------------------------------------------------------

_PHONE = re.compile(
    r"(?<![\d.])(?:(\+\d{1,3})[\s-]?)?"
    r"(1[3-9]\d[\s-]?\d{4}[\s-]?\d{4}|0\d{2,3}-\d{7,8}|[48]00-?\d{3}-?\d{4}|\d{3,4}-\d{7,8})(?![\d.])"
)
_CODE_CONTEXT = re.compile(
    r"(电话|手机|号码|拨打|致电|热线|验证码|编号|代码|邮编|房间|车次|航班|型号|尾号|工号|学号|"
    r"账号|密码|卡号|单号|编码|ID|QQ|微信)([是为:：\s]*)(\d[\d\s-]*\d|\d)"
)


def _phone(m: re.Match[str]) -> str:
    prefix = ("加" + read_digits(m[1][1:], phone=True)) if m[1] else ""
    return prefix + read_digits(m[2], phone=True)


def _code(m: re.Match[str]) -> str:
    phone = m[1] in ("电话", "手机", "号码", "拨打", "致电", "热线")
    return m[1] + m[2].strip() + read_digits(m[3], phone=phone)


# ---------------------------------------------------------------------------
# Money, percentages, fractions, units, ranges
# ---------------------------------------------------------------------------

_MAGNITUDE = r"(万亿|亿|万|千|百)?"
_CURRENCY_BEFORE = {"¥": "元", "$": "美元", "US$": "美元", "€": "欧元", "£": "英镑", "HK$": "港元"}
_MONEY = re.compile(r"(US\$|HK\$|[¥$€£])\s?(" + _NUM + ")" + _MAGNITUDE)


def _money(m: re.Match[str]) -> str:
    amount = m[2].replace(",", "")
    whole, _, frac = amount.partition(".")
    unit = _CURRENCY_BEFORE[m[1]]
    if unit == "元" and frac and len(frac) == 2 and not m[3]:
        jiao, fen = int(frac[0]), int(frac[1])
        out = read_integer(whole) + "元" if int(whole or 0) or not (jiao or fen) else ""
        if jiao:
            out += _DIGITS[jiao] + "角"
        if fen:
            out += ("零" if out and not jiao else "") + _DIGITS[fen] + "分"
        return out
    return read_number(amount) + (m[3] or "") + unit


_PERCENT = re.compile(r"((?:(?<![\d%])[-+])?" + _NUM + r")\s?([%‰])")


def _percent(m: re.Match[str]) -> str:
    number, sign = m[1], ""
    if number[0] in "-+":
        sign, number = ("负" if number[0] == "-" else "正"), number[1:]
    return sign + ("百分之" if m[2] == "%" else "千分之") + read_number(number)


_FRACTION = re.compile(r"(?<![\d/.])(\d+)/(\d+)(?![\d/])")


def _fraction(m: re.Match[str]) -> str:
    return read_integer(m[2], liang=False) + "分之" + read_integer(m[1], liang=False)


_UNITS = {
    "km/h": "千米每小时", "m/s": "米每秒", "km²": "平方千米", "m²": "平方米", "m³": "立方米",
    "℃": "摄氏度", "°C": "摄氏度", "°F": "华氏度", "°": "度",
    "km": "千米", "cm": "厘米", "mm": "毫米", "nm": "纳米", "m": "米",
    "kg": "千克", "mg": "毫克", "g": "克", "t": "吨",
    "ml": "毫升", "mL": "毫升", "L": "升", "l": "升",
    "kWh": "千瓦时", "kW": "千瓦", "W": "瓦", "V": "伏", "mAh": "毫安时",
    "GHz": "吉赫兹", "MHz": "兆赫兹", "Hz": "赫兹",
    "ms": "毫秒", "s": "秒", "min": "分钟", "h": "小时",
}
_UNIT_RE = "|".join(re.escape(u) for u in sorted(_UNITS, key=len, reverse=True))
_RANGE = re.compile(
    r"(?<![\d.])(" + _SNUM + r")\s?(" + _UNIT_RE + r")?\s?[-~～至]\s?(" + _SNUM + r")\s?(" + _UNIT_RE
    + r")?(?![A-Za-z])"
)
_MEASURE = re.compile(r"(" + _SNUM + r")\s?(" + _UNIT_RE + r")(?![A-Za-z])")


def _range(m: re.Match[str]) -> str:
    first, second = m[1], m[3].lstrip("+")
    unit = _UNITS.get(m[4] or m[2] or "", "")
    left = read_number(first) + (_UNITS.get(m[2], "") if m[2] and m[4] and m[2] != m[4] else "")
    return left + "到" + read_number(second) + unit


def _measure(m: re.Match[str]) -> str:
    unit = _UNITS[m[2]]
    if m[1] == "2" and "度" not in unit:
        return "两" + unit  # 两千克, 两小时
    if "度" in unit and m[1][:1] in "-−":
        return "零下" + read_number(m[1][1:]) + unit  # temperatures below zero: 零下三摄氏度
    return read_number(m[1]) + unit


# ---------------------------------------------------------------------------
# Plain numbers
# ---------------------------------------------------------------------------

# 2 is 两 before a measure word.
_LIANG_BEFORE = "个只本位次条天件种人台张名块辆岁家页斤头匹双对把支份杯瓶碗句篇首部场周年倍层间"
_TWO_MEASURE = re.compile(r"(?<![\d.])2(?=(?:[" + _LIANG_BEFORE + r"]|小时|分钟|公里|千米|米|千克|公斤))")
_ORDINAL = re.compile(r"第(\d+)")
_LONG_DIGITS = re.compile(r"(?<![\d.,])(0\d+|\d{9,})(?![\d.,])")
_NUMBER = re.compile(r"(?<![\d.])(" + _SNUM + r")(?![\d])")
_HANZI_RANGE = re.compile(r"(?<=[零一二三四五六七八九十百千万亿])\s?[-~]\s?(?=百分之|千分之|负|[零一二三四五六七八九十两])")
_NEGATIVE_OK = re.compile(r"(?:^|[^A-Za-z0-9)])$")


def _number(m: re.Match[str], text: str) -> str:
    number = m[1]
    if number[:1] in "-+" and not _NEGATIVE_OK.search(text[: m.start()]):
        # "GPT-4", "A-3": the hyphen is a joiner, not a sign.
        return number[0].replace("-", " ").replace("+", "加") + read_number(number[1:])
    return read_number(number)


def normalize_zh(text: str) -> str:
    """Chinese text with every number and symbol written as the Hanzi a reader says."""
    text = _narrow(unicodedata.normalize("NFC", text))
    text = _PHONE.sub(_phone, text)
    text = _CODE_CONTEXT.sub(_code, text)
    text = _DATE_ISO.sub(_date_iso, text)
    text = _YEAR_RANGE.sub(lambda m: read_digits(m[1]) + "到" + read_digits(m[2]), text)
    text = _DOTTED.sub(_dotted, text)
    text = _YEARS_CN.sub(lambda m: read_digits(m[1]) + "年代", text)
    text = _DATE_CN.sub(_date_cn, text)
    text = _YEAR_CN.sub(lambda m: read_digits(m[1]) + "年", text)
    text = _TIME.sub(_time, text)
    text = _RATIO.sub(_ratio, text)
    text = _MONEY.sub(_money, text)
    text = _PERCENT.sub(_percent, text)
    text = re.sub(r"(" + _NUM + r")\s?元", lambda m: read_number(m[1].replace(",", "")) + "元", text)
    text = _FRACTION.sub(_fraction, text)
    text = _RANGE.sub(_range, text)
    text = _MEASURE.sub(_measure, text)
    text = _ORDINAL.sub(lambda m: "第" + read_integer(m[1], liang=False), text)
    text = _TWO_MEASURE.sub("两", text)
    text = _LONG_DIGITS.sub(lambda m: read_digits(m[1]), text)
    text = _NUMBER.sub(lambda m: _number(m, text), text)
    text = _HANZI_RANGE.sub("到", text)
    text = re.sub(r"\+", "加", text)
    text = text.replace("&", "和").replace("@", " at ")
    return text
