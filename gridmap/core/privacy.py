"""Personal data for display: masking of known personal fields, and redaction of free text.

Two tools:

* **Masks** (:func:`mask_name`, :func:`mask_id_card`, :func:`mask_phone`, :func:`mask_frame`) hide most of a
  field that is known to be personal (a resident's name, ID card, phone) for roles that may see it masked.
* **Redaction** (:func:`redact_text`) blanks personal data that people type into free text — an event's
  title and description, notes in the audit trail — for every role without the right to personal data
  (everyone but operators and admins). It is the ONE redaction: the API, the live feed, the dashboard,
  the layers endpoint and exports all call it.

What :func:`redact_text` catches (each replaced by ``***``):

* PRC mobile numbers, with or without ``+86``/``0086``, spaces or dashes (``+86 138-1234-5678``);
* landlines with an area code (``0571-88881234``, ``(0571) 8888 1234``, ``057188881234``, ``转`` extensions),
  and 7–8 digit local numbers right after a contact word (电话, 手机, 座机, 号码, tel, phone …);
* ID-card numbers: 18 digits (the last may be ``X``) and the old 15 digits; bank-card-like runs of 16–19
  digits (grouped by 4 or not); any other run of 15 or more digits;
* e-mail addresses; QQ and WeChat ids after their word (QQ号, 微信 …);
* names where they can be recognised: the names passed in ``names`` (the reporter's own stored name) and
  their surname + 先生/女士/师傅/阿姨/… forms; a common Chinese surname followed by a title (王先生, 李阿姨,
  张师傅, 陈小明女士, 赵大爷, 刘老师); ``我叫X``, ``名叫X``, ``姓X``, ``联系人X``, ``报警人X`` and the like.

What it cannot catch — be honest about it: a name typed on its own with no title or introducing phrase
(``张伟说楼上漏水``) unless it is the reporter's own stored name; nicknames, initials, names in pinyin or
English; an address that identifies one household (``3幢2单元1202室``, which is also what a team needs to
get there); numbers written in Chinese characters or split with unusual separators; licence plates and
descriptions of people. It also over-blanks now and then (a word after a surname-like character and before
a title, e.g. ``于是老师``). Free text is therefore never a place for personal data: intake forms carry the
reporter apart (``reporter``), and that is what reaches operators and admins only.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import TypeVar

import pandas as pd

REDACTED = "***"
DF = TypeVar("DF", bound=pd.DataFrame)  # a DataFrame or a GeoDataFrame, returned as the same kind


def _missing(v: object) -> bool:
    return v is None or (isinstance(v, float) and v != v) or v is pd.NA or v is pd.NaT


def _mask(value: str | None, head: int, tail: int) -> str | None:
    """Keep ``head`` leading and ``tail`` trailing characters, star the rest; a value too short to keep
    anything of is starred whole. Missing stays missing (None), the empty string stays empty."""
    if _missing(value) or not value:
        return None if _missing(value) else value
    if len(value) <= head + tail:
        return "*" * len(value)
    return value[:head] + "*" * (len(value) - head - tail) + value[len(value) - tail:]


def mask_name(name: str | None) -> str | None:
    """张三丰 → 张**; a one-character name is masked entirely (张 → *)."""
    return _mask(name, 1, 0)


def mask_id_card(number: str | None) -> str | None:
    """330106199001011234 → 330106********1234 (region kept, birth date hidden)."""
    return _mask(number, 6, 4)


def mask_phone(phone: str | None) -> str | None:
    """13812345678 → 138****5678."""
    return _mask(phone, 3, 4)


MASKS = {"name": mask_name, "id_card": mask_id_card, "phone": mask_phone}


def mask_frame(df: DF) -> DF:
    """Return a copy with every personal column masked."""
    out = df.copy()
    for col, fn in MASKS.items():
        if col in out.columns:
            out[col] = out[col].map(fn)
    return out


# -- redaction of free text --------------------------------------------------------------------------------
# Hand-written: no maintained library recognises PRC phone/ID formats and Chinese name forms (Presidio and
# spaCy models are large, English-first, and would still need these rules).
_EDGE_L = r"(?<![0-9A-Za-z])"
_EDGE_R = r"(?![0-9A-Za-z])"
_SEP = r"[ \t\-]?"
_NUMBERS = re.compile(_EDGE_L + "(?:" + "|".join((
    r"(?:\+|00)?86" + _SEP + r"1[3-9](?:" + _SEP + r"\d){9}",   # mobile with the country code
    r"1[3-9]\d(?:" + _SEP + r"\d){8}",                          # mobile: 138 1234 5678, 138-1234-5678
    r"\d{17}[\dXx]",                                              # ID card, 18 digits
    r"\d{4}(?:" + _SEP + r"\d{4}){3}(?:" + _SEP + r"\d{1,3})?",  # bank card: 16-19 digits, grouped or not
    r"\d{15,}",                                                   # old ID card (15) and any longer run
    r"(?:\(0\d{2,3}\)|0\d{2,3})" + r"[ \t\-]?\d{3,4}" + _SEP + r"\d{4}(?:转\d{1,6})?",  # landline with area code
)) + ")" + _EDGE_R)
_CONTACT_WORDS = r"(?:联系电话|联系方式|电话|手机号?码?|座机|号码|tel|phone|mobile)"
_LOCAL_NUMBER = re.compile(r"(?i)(" + _CONTACT_WORDS + r"[:：\s是为]*)(\d(?:[ \-]?\d){6,7})" + _EDGE_R)
# (the look-behind: a match starts only where a run of address characters starts; without it a long run of
# letters or digits costs quadratic time)
_EMAIL = re.compile(r"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+")
_IM_ID = re.compile(r"(?i)((?:QQ号?|微信号?|wechat|vx)[:：\s是为]*)([A-Za-z0-9_\-]{5,20})")

_COMPOUND_SURNAMES = ("欧阳", "司马", "诸葛", "上官", "东方", "皇甫", "尉迟", "公孙", "慕容", "令狐", "长孙", "宇文",
                      "司徒", "夏侯", "轩辕", "端木", "南宫", "西门", "独孤", "呼延", "申屠", "太史", "百里", "钟离")
#: The most common surnames (about 85% of the population).
_SURNAMES = ("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任"
             "沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付傅方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫"
             "孔向汤常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞左柳甘祝包宁尚符舒阮柯纪梅童凌"
             "毕单季裴霍涂成苗谷盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻祁蒲房滕屈饶解牟艾尤阳时穆农司卓古吉缪简车项连芦麦"
             "褚娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿桂全佟应臧闵苟邬边卞姬师和仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖巩明佘"
             "池查麻苑迟邝")
_TITLES = ("先生|女士|小姐|师傅|阿姨|大爷|大妈|大娘|大叔|大伯|大姐|大哥|老师|奶奶|爷爷|阿婆|阿公|老伯|老太|老板|同学|"
           "经理|医生|律师|警官|书记|主任")
_HAN = r"[\u4e00-\u9fff]"
_SURNAME = "(?:" + "|".join(_COMPOUND_SURNAMES) + "|[" + _SURNAMES + "])"
_TITLED = re.compile(_SURNAME + _HAN + r"{0,2}?(?:" + _TITLES + ")")
_OLD_YOUNG = re.compile(r"(?<![\u4e00-\u9fff])[老小]" + "[" + _SURNAMES + "]" + r"(?=(?:家|说|反映|称|来电|投诉|打电话|报警|\s|，|,|。|$))")
_INTRO = re.compile(r"((?:我叫|我的名字是|名叫|本人|姓名|联系人|报警人|报案人|举报人|投诉人|反映人|来电人|求助人|户主|业主)"
                    r"[:：\s是为]*)(" + _HAN + r"{2,4}?)(?=$|[^\u4e00-\u9fff]|说|反映|称|来电|投诉|电话|手机|住|在|家)")
_SURNAME_IS = re.compile(r"(姓)(?!名)(" + "|".join(_COMPOUND_SURNAMES) + "|" + _HAN + r")(?=[^\u4e00-\u9fff]|$|的|，|先生|女士|名)")


def _surname_of(name: str) -> str:
    return next((c for c in _COMPOUND_SURNAMES if name.startswith(c) and len(name) > len(c)), name[:1])


def _known_names(names: Iterable[str | None]) -> re.Pattern | None:
    usable = tuple(sorted({str(n).strip() for n in names if not _missing(n)}))
    return _names_pattern(usable) if usable else None


@functools.lru_cache(maxsize=1024)
def _names_pattern(names: tuple[str, ...]) -> re.Pattern | None:
    """One pattern for the given names (the exact name, surname + a title, 老/小 + surname)."""
    alts: set[str] = set()
    for n in names:
        if len(n) < 2 or not re.search(_HAN + "|[A-Za-z]{2}", n):
            continue  # a one-character "name" would blank that character everywhere
        alts.add(re.escape(n))
        if re.fullmatch(_HAN + "+", n):
            s = re.escape(_surname_of(n))
            alts.add(s + r"(?:" + _TITLES + ")")
            alts.add(r"[老小]" + s + r"(?![\u4e00-\u9fff]{2})")
    if not alts:
        return None
    return re.compile("|".join(sorted(alts, key=len, reverse=True)))


def redact_text(text: str | None, names: Iterable[str | None] = ()) -> str | None:
    """``text`` with personal data blanked (see the module for what is caught and what is not).

    ``names``: names known to belong to the people of this text (the event's reporter), blanked wherever
    they appear, with their surname + 先生/女士/… forms. Missing values (None, NaN, NA) come back as None.

    >>> redact_text("王先生 13812345678 反映噪音")
    '*** *** 反映噪音'
    >>> redact_text("我叫李四，身份证33010619900101123X，邮箱 li.si@example.com")
    '我叫***，身份证***，邮箱 ***'
    >>> redact_text("王小明说楼道堆物", names=["王小明"]), redact_text("王女士来电", names=["王小明"])
    ('***说楼道堆物', '***来电')
    >>> redact_text("张伟说楼上漏水")  # a bare name that is not the reporter's: not recognised
    '张伟说楼上漏水'
    >>> redact_text("文二路188号116幢飞线充电")
    '文二路188号116幢飞线充电'
    """
    if _missing(text):
        return None
    if not isinstance(text, str):
        text = str(text)
    if not text:
        return text
    out = _EMAIL.sub(REDACTED, text)
    out = _IM_ID.sub(lambda m: m.group(1) + REDACTED, out)
    out = _NUMBERS.sub(REDACTED, out)
    out = _LOCAL_NUMBER.sub(lambda m: m.group(1) + REDACTED, out)
    known = _known_names(names)
    if known is not None:
        out = known.sub(REDACTED, out)
    out = _TITLED.sub(REDACTED, out)
    out = _OLD_YOUNG.sub(REDACTED, out)
    out = _INTRO.sub(lambda m: m.group(1) + REDACTED, out)
    out = _SURNAME_IS.sub(lambda m: m.group(1) + REDACTED, out)
    return out


def redact_values(values: Iterable, names: Iterable[Iterable[str | None]] | None = None) -> list[str | None]:
    """:func:`redact_text` over a column (e.g. ``df["title"]``), with each row's known names if given."""
    vals = list(values)
    per_row = list(names) if names is not None else [()] * len(vals)
    return [redact_text(v, n or ()) for v, n in zip(vals, per_row, strict=True)]
