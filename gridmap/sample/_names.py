"""Chinese names, PRC ID-card numbers, mobile numbers and place names for the sample street.

Private helpers of :mod:`gridmap.sample.street`. Everything here is vectorised over numpy
arrays and draws only from the ``numpy.random.Generator`` it is given, so the same generator
state always yields the same strings.
"""

from __future__ import annotations

import numpy as np

# Surnames weighted roughly as in Zhejiang (陈/王 lead, 徐/沈/俞/楼/应 are local).
_SURNAMES: tuple[tuple[str, float], ...] = (
    ("陈", 6.0), ("王", 5.5), ("张", 4.0), ("李", 3.5), ("徐", 3.0), ("周", 3.0), ("吴", 3.0),
    ("沈", 2.5), ("朱", 2.5), ("杨", 2.0), ("黄", 2.0), ("刘", 2.0), ("胡", 2.0), ("金", 1.8),
    ("俞", 1.5), ("孙", 1.5), ("郑", 1.5), ("何", 1.4), ("赵", 1.3), ("钱", 1.2), ("方", 1.2),
    ("叶", 1.2), ("蒋", 1.1), ("林", 1.0), ("陆", 1.0), ("潘", 1.0), ("汪", 1.0), ("许", 1.0),
    ("傅", 0.9), ("邵", 0.9), ("姚", 0.9), ("章", 0.8), ("高", 0.8), ("马", 0.8), ("丁", 0.7),
    ("郭", 0.7), ("罗", 0.7), ("余", 0.7), ("应", 0.6), ("楼", 0.6), ("梁", 0.6), ("宋", 0.6),
    ("唐", 0.6), ("韩", 0.6), ("冯", 0.6), ("曹", 0.6), ("袁", 0.6), ("谢", 0.6), ("蔡", 0.6),
    ("戴", 0.6), ("夏", 0.6), ("顾", 0.6), ("毛", 0.6), ("邓", 0.5), ("彭", 0.5), ("范", 0.5),
    ("施", 0.5), ("严", 0.5), ("曾", 0.4), ("杜", 0.4), ("钟", 0.4), ("江", 0.4), ("魏", 0.4),
    ("倪", 0.4), ("任", 0.4), ("卢", 0.4), ("邱", 0.4), ("童", 0.4), ("孔", 0.3), ("骆", 0.3),
    ("鲍", 0.3), ("裘", 0.3), ("屠", 0.3), ("詹", 0.2), ("欧阳", 0.05), ("诸葛", 0.02),
)
# Given-name characters by sex and by era (born before 1980 / from 1980 on).
_GIVEN = {
    ("M", 0): "国建华明军平伟强林荣德海根福金永兴宝生忠民志刚庆祥文达培贵富勇",
    ("M", 1): "浩宇杰轩涛磊俊鹏超斌晨博睿哲航泽铭凯旭昊阳帆逸辰子嘉文思一晓亦",
    ("F", 0): "英秀兰芳珍凤美玉红丽萍霞娟敏燕琴华素桂月彩云爱莲芬梅",
    ("F", 1): "婷雪琳晶倩慧颖佳欣怡梦雨涵萱悦婧妍琪璐瑶静诗语可馨子思一晓",
}
# Hangzhou county-level codes as they appear on ID cards, including pre-2021 ones.
_REGION_CODES: tuple[tuple[str, float], ...] = (
    ("330106", 0.34), ("330110", 0.20), ("330105", 0.10), ("330102", 0.08), ("330103", 0.05),
    ("330104", 0.05), ("330109", 0.05), ("330108", 0.03), ("330111", 0.03), ("330122", 0.02),
    ("330127", 0.02), ("330182", 0.015), ("330185", 0.015),
)
_MOBILE_PREFIXES = ["134", "135", "136", "137", "138", "139", "147", "150", "151", "152", "157", "158", "159", "178", "182", "183", "184", "187", "188", "195", "198", "130", "131", "132", "155", "156", "166", "175", "176", "185", "186", "133", "149", "153", "173", "177", "180", "181", "189", "191", "199"]
_ID_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2], dtype=np.int64)
_ID_CHECK = np.frombuffer(b"10X98765432", dtype=np.uint8)

# Community / village names with a pinyin spelling for the English label.
COMMUNITY_NAMES: tuple[tuple[str, str], ...] = (
    ("翠竹", "Cuizhu"), ("桂香", "Guixiang"), ("枫林", "Fenglin"), ("荷塘", "Hetang"),
    ("梅苑", "Meiyuan"), ("兰亭", "Lanting"), ("松涛", "Songtao"), ("青桐", "Qingtong"),
    ("锦绣", "Jinxiu"), ("和睦", "Hemu"), ("安澜", "Anlan"), ("清泉", "Qingquan"),
    ("溪畔", "Xipan"), ("永安", "Yong'an"), ("东岳", "Dongyue"), ("方家", "Fangjia"),
    ("龙泉", "Longquan"), ("丰收", "Fengshou"), ("景湖", "Jinghu"), ("宝塔", "Baota"),
    ("新桥", "Xinqiao"), ("金城", "Jincheng"), ("万景", "Wanjing"), ("银湖", "Yinhu"),
    ("石门", "Shimen"), ("竹园", "Zhuyuan"), ("杨梅", "Yangmei"), ("茶山", "Chashan"),
    ("文溪", "Wenxi"), ("望湖", "Wanghu"), ("云栖", "Yunqi"), ("广和", "Guanghe"),
    ("朝阳", "Chaoyang"), ("春晓", "Chunxiao"), ("秋实", "Qiushi"), ("映月", "Yingyue"),
    ("紫霞", "Zixia"), ("晨光", "Chenguang"), ("联丰", "Lianfeng"), ("华丰", "Huafeng"),
)
_ORDINALS_ZH = "一二三四五六七八九十"
_ESTATE_WORDS = ["翠苑", "嘉绿", "金都", "绿城", "桂花", "紫荆", "丹桂", "德加", "益乐", "文鼎", "西溪", "华门", "世纪", "阳光", "枫华", "城西", "颐景", "蓝湾", "新湖", "金色", "江南", "锦绣", "和家", "悦府", "云溪", "天阳", "杭新", "湖畔", "春江", "风雅", "九莲", "竞舟", "府苑", "华星", "东方", "明珠", "左岸", "香樟", "梧桐", "荷花", "望月", "清水", "宜居", "万家", "幸福", "和平", "长乐", "兴旺", "永福", "安居"]
_ESTATE_SUFFIXES = ["苑", "花园", "小区", "家园", "公寓", "新村", "名苑", "雅苑", "嘉园", "府", "公馆", "人家", "城", "里"]
_COMMERCIAL_SUFFIXES = ["大厦", "中心", "商业广场", "商务楼", "广场", "综合楼"]
_BRAND_WORDS = ["鑫源", "百佳", "福满", "金鼎", "华联", "好邻", "优品", "惠民", "家和", "同福", "顺发", "聚源", "万隆", "恒昌", "润发", "兴隆", "老杭州", "知味", "小杭", "江南", "西子", "湖畔", "新安", "天成", "合众", "四季", "阿明", "阿英", "一品", "老王", "张记", "徐记", "沈记", "味道", "食尚", "悦来", "如家", "汇丰", "鸿运", "大吉", "永兴", "宏达", "博雅", "启航", "晨曦", "康宁", "仁和", "益寿"]
BUSINESS_SUFFIXES: dict[str, tuple[str, ...]] = {
    "shop": ("便利店", "超市", "五金店", "水果店", "烟酒店", "服装店", "理发店", "药房", "文具店", "电动车行"),
    "hotel": ("宾馆", "酒店", "快捷酒店", "民宿", "商务酒店"),
    "restaurant": ("面馆", "小吃店", "餐厅", "饭店", "火锅店", "奶茶店", "快餐店", "烧烤店"),
    "market": ("农贸市场", "菜市场", "生鲜市场"),
    "school": ("小学", "中学", "实验学校"),
    "kindergarten": ("幼儿园", "双语幼儿园"),
    "clinic": ("诊所", "社区卫生服务站", "口腔诊所", "中医诊所"),
    "factory": ("机械厂", "服装厂", "电子有限公司", "五金厂", "纺织有限公司", "塑料制品厂"),
    "warehouse": ("仓储中心", "物流仓库", "冷链仓库"),
    "office": ("科技有限公司", "网络科技有限公司", "贸易有限公司", "设计事务所", "文化传媒有限公司"),
    "entertainment": ("KTV", "网吧", "棋牌室", "足浴店", "酒吧", "台球室"),
    "elderly_care": ("养老院", "居家养老服务中心", "颐养院"),
}


def _pick(rng: np.random.Generator, values: list[str] | tuple[str, ...], n: int) -> np.ndarray:
    """Uniformly pick ``n`` strings from ``values`` as an object array."""
    return np.asarray(values, dtype=object)[rng.integers(0, len(values), n)]


def chinese_names(rng: np.random.Generator, sex: np.ndarray, birth_year: np.ndarray) -> np.ndarray:
    """Return a Chinese full name per person, weighted surnames and era-typical given names."""
    n = len(sex)
    surnames, weights = zip(*_SURNAMES, strict=True)
    p = np.asarray(weights) / np.sum(weights)
    family = np.asarray(surnames, dtype=object)[rng.choice(len(surnames), n, p=p)]
    era = (birth_year >= 1980).astype(int)
    single = rng.random(n) < np.where(era == 0, 0.35, 0.15)
    first = np.empty(n, dtype=object)
    second = np.empty(n, dtype=object)
    for (s, e), pool in sorted(_GIVEN.items()):
        mask = (sex == s) & (era == e)
        k = int(mask.sum())
        chars = np.asarray(list(pool), dtype=object)
        first[mask] = chars[rng.integers(0, len(chars), k)]
        second[mask] = chars[rng.integers(0, len(chars), k)]
    second[single] = ""
    return family + first + second


def id_card_numbers(
    rng: np.random.Generator, sex: np.ndarray, birth_year: np.ndarray
) -> np.ndarray:
    """Return unique 18-character PRC resident ID numbers (GB 11643-1999).

    Region code 3301xx, a birth date inside ``birth_year``, a three-digit sequence whose last
    digit is odd for men and even for women, and the ISO 7064 MOD 11-2 check character.
    """
    n = len(sex)
    codes, weights = zip(*_REGION_CODES, strict=True)
    p = np.asarray(weights) / np.sum(weights)
    region = np.asarray(codes)[rng.choice(len(codes), n, p=p)]
    jan1 = (birth_year.astype(np.int64) - 1970).astype("datetime64[Y]").astype("datetime64[D]")
    days = ((birth_year.astype(np.int64) - 1969).astype("datetime64[Y]").astype("datetime64[D]")
            - jan1).astype(np.int64)
    born = jan1 + (rng.random(n) * days).astype(np.int64)
    ymd = np.char.replace(np.datetime_as_string(born, unit="D"), "-", "")
    male = sex == "M"
    stem = np.char.add(region, ymd)
    ids = np.empty(n, dtype="U18")
    todo = np.arange(n)
    while len(todo):
        seq = rng.integers(0, 500, len(todo)) * 2 + male[todo]
        body = np.char.add(stem[todo], np.char.zfill(seq.astype(str), 3))
        ids[todo] = np.char.add(body, check_characters(body))
        _, first = np.unique(ids, return_index=True)
        dup = np.ones(n, dtype=bool)
        dup[first] = False
        todo = np.flatnonzero(dup)
    return ids.astype(object)


def check_characters(body17: np.ndarray) -> np.ndarray:
    """ISO 7064 MOD 11-2 check characters for an array of 17-digit strings."""
    digits = np.frombuffer(np.asarray(body17, dtype="S17").tobytes(), dtype=np.uint8)
    digits = digits.reshape(-1, 17).astype(np.int64) - 48
    idx = (digits @ _ID_WEIGHTS) % 11
    return np.array(list(_ID_CHECK[idx].tobytes().decode("ascii")), dtype="U1")


def mobile_numbers(rng: np.random.Generator, n: int) -> np.ndarray:
    """Return ``n`` distinct 11-digit mainland mobile numbers with real carrier prefixes."""
    out = np.empty(n, dtype="U11")
    todo = np.arange(n)
    while len(todo):
        prefix = np.asarray(_MOBILE_PREFIXES)[rng.integers(0, len(_MOBILE_PREFIXES), len(todo))]
        tail = np.char.zfill(rng.integers(0, 100_000_000, len(todo)).astype(str), 8)
        out[todo] = np.char.add(prefix, tail)
        _, first = np.unique(out, return_index=True)
        dup = np.ones(n, dtype=bool)
        dup[first] = False
        todo = np.flatnonzero(dup)
    return out.astype(object)


def community_names(n: int, is_village: np.ndarray) -> tuple[list[str], list[str]]:
    """Chinese and English names for ``n`` communities; villages end in 村 / Village."""
    zh, en = [], []
    for i in range(n):
        base_zh, base_en = COMMUNITY_NAMES[i % len(COMMUNITY_NAMES)]
        if i >= len(COMMUNITY_NAMES):
            k = i // len(COMMUNITY_NAMES)
            base_zh, base_en = base_zh + _ORDINALS_ZH[k % 10], f"{base_en} {k + 1}"
        village = bool(is_village[i])
        zh.append(base_zh + ("村" if village else "社区"))
        en.append(base_en + (" Village" if village else " Community"))
    return zh, en


def estate_names(rng: np.random.Generator, n: int) -> np.ndarray:
    """Names of residential estates, commercial complexes and the like (one per block)."""
    words = _pick(rng, _ESTATE_WORDS, n)
    suffix = _pick(rng, _ESTATE_SUFFIXES, n)
    names = words + suffix
    # Repeated names get 一区/二区 ... like real phased estates.
    seen: dict[str, int] = {}
    out = np.empty(n, dtype=object)
    for i, name in enumerate(names):
        k = seen.get(name, 0)
        seen[name] = k + 1
        out[i] = name if k == 0 else f"{name}{_ORDINALS_ZH[min(k, 9)]}区"
    return out


def commercial_names(rng: np.random.Generator, n: int) -> np.ndarray:
    """Names of office and commercial complexes."""
    return _pick(rng, _ESTATE_WORDS, n) + _pick(rng, _COMMERCIAL_SUFFIXES, n)


def business_names(rng: np.random.Generator, kinds: np.ndarray, place: np.ndarray) -> np.ndarray:
    """Shop-style names: a brand word (or the community name for schools) plus a kind suffix."""
    n = len(kinds)
    brand = _pick(rng, _BRAND_WORDS, n)
    public = np.isin(kinds, ["school", "kindergarten", "elderly_care", "market"])
    brand[public] = place[public]
    suffix = np.empty(n, dtype=object)
    for kind, options in sorted(BUSINESS_SUFFIXES.items()):
        mask = kinds == kind
        suffix[mask] = _pick(rng, options, int(mask.sum()))
    return brand + suffix


def ordinal_zh(k: int) -> str:
    """Chinese numeral for 1..99 (used in 第N组 and the like)."""
    if k <= 10:
        return _ORDINALS_ZH[k - 1]
    tens, ones = divmod(k, 10)
    head = "" if tens == 1 else _ORDINALS_ZH[tens - 1]
    return head + "十" + (_ORDINALS_ZH[ones - 1] if ones else "")
