"""A year of past grid events (12345 hotline tickets, chat-group reports, patrol findings...).

Private helper of :mod:`gridmap.sample.street` (EPSG:4549 metres). Events mix category-specific
hotspots (parking around the densest homes, consumer disputes around markets and malls, ...)
with background noise weighted by population; report times follow diurnal, weekly and seasonal
profiles (fire hazards peak in winter, environment complaints in summer), and each event walks
through dispatch -> accept -> on site -> resolved -> closed with log-normal delays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from gridmap.core.vocabulary import BASE_CHANNELS

CATEGORIES = ("fire_hazard", "public_security", "fraud", "neighbour_dispute", "consumer_dispute",
              "food_drug_safety", "environment", "parking", "road_facility", "elderly_care")
CHANNELS = BASE_CHANNELS  # the generator's year of past events predates the walk-in and director channels
_CHANNEL_P = np.array([0.38, 0.20, 0.10, 0.27, 0.05])
# Category mix per channel (rows: channels except smart_alarm; columns: CATEGORIES).
_MIX = np.array([
    [0.08, 0.08, 0.08, 0.14, 0.14, 0.08, 0.14, 0.12, 0.08, 0.06],  # hotline
    [0.08, 0.08, 0.04, 0.20, 0.08, 0.04, 0.14, 0.20, 0.08, 0.06],  # chat group
    [0.12, 0.06, 0.02, 0.10, 0.10, 0.06, 0.18, 0.16, 0.16, 0.04],  # QR code
    [0.22, 0.06, 0.01, 0.05, 0.02, 0.06, 0.20, 0.20, 0.16, 0.02],  # patrol
])
_SEVERITY = {  # P(severity 1..4)
    "fire_hazard": (0.30, 0.40, 0.22, 0.08), "public_security": (0.30, 0.40, 0.22, 0.08),
    "fraud": (0.20, 0.45, 0.25, 0.10), "neighbour_dispute": (0.55, 0.35, 0.08, 0.02),
    "consumer_dispute": (0.60, 0.32, 0.07, 0.01), "food_drug_safety": (0.35, 0.40, 0.20, 0.05),
    "environment": (0.55, 0.35, 0.08, 0.02), "parking": (0.75, 0.22, 0.03, 0.0),
    "road_facility": (0.55, 0.35, 0.08, 0.02), "elderly_care": (0.35, 0.40, 0.20, 0.05),
}
_RESOLVE_MIN = {  # median minutes from on site to resolved
    "fire_hazard": 25, "public_security": 40, "fraud": 90, "neighbour_dispute": 90,
    "consumer_dispute": 120, "food_drug_safety": 180, "environment": 240, "parking": 15,
    "road_facility": 1440, "elderly_care": 60,
}
_TITLES = {
    "fire_hazard": ("楼道堆放杂物", "电动自行车楼道充电", "消防通道被占用", "飞线充电", "灭火器过期",
                    "疑似烟雾报警"),
    "public_security": ("可疑人员徘徊", "深夜噪音扰民", "聚众喝酒滋事", "车辆被盗", "门窗被撬"),
    "fraud": ("老人接到诈骗电话", "冒充客服退款诈骗", "保健品推销骗局", "刷单返利诈骗"),
    "neighbour_dispute": ("楼上漏水纠纷", "邻里噪音矛盾", "公共区域占用纠纷", "宠物扰民"),
    "consumer_dispute": ("商家拒绝退款", "预付卡商家跑路", "商品以次充好", "缺斤短两"),
    "food_drug_safety": ("餐馆卫生差", "售卖过期食品", "无证经营小吃摊", "药店违规售药"),
    "environment": ("垃圾未及时清运", "油烟扰民", "夜间施工噪音", "河道漂浮物", "违规焚烧垃圾"),
    "parking": ("车辆占用消防通道", "小区门口乱停车", "僵尸车长期占位", "非机动车乱停放"),
    "road_facility": ("路灯不亮", "窨井盖破损", "路面坑洼", "交通信号灯故障", "护栏损坏"),
    "elderly_care": ("独居老人多日未出门", "老人走失", "高龄老人需要送餐", "老人突发不适求助"),
}
_PREFIX = {"hotline_12345": "市民来电反映：", "chat_group": "居民在网格群反映：",
           "qr_code": "群众扫码上报：", "patrol": "网格员巡查发现：", "smart_alarm": "智慧烟感报警："}
_EXTERNAL = {"hotline_12345": ("HZ12345-", 5), "chat_group": ("WG-", 4), "qr_code": ("QR", 5),
             "patrol": ("XC-", 4), "smart_alarm": ("SA-", 5)}
_HOURLY = np.array([0.4, 0.25, 0.2, 0.2, 0.25, 0.4, 0.8, 1.4, 2.0, 2.4, 2.4, 2.0,
                    1.6, 1.8, 2.1, 2.2, 2.1, 1.9, 1.8, 1.9, 1.8, 1.4, 1.0, 0.7])
_HOURLY_PATROL = np.where((np.arange(24) >= 8) & (np.arange(24) <= 20), _HOURLY, 0.02)
_HOURLY_ALARM = _HOURLY + np.r_[np.zeros(18), [0.8, 1.2, 1.6, 1.8, 1.4, 0.9]]


@dataclass(frozen=True)
class Events:
    channel: np.ndarray
    category: np.ndarray
    severity: np.ndarray
    reported: np.ndarray  # seconds after the day events_start falls on (local midnight)
    xy: np.ndarray
    building: np.ndarray  # building position in final order, -1 if none (xy nan: to place)


def _day_weights(category: str, days: pd.DatetimeIndex) -> np.ndarray:
    doy = days.day_of_year.to_numpy()
    weekend = days.day_of_week.to_numpy() >= 5
    season = {"fire_hazard": 1 + 0.55 * np.cos(2 * np.pi * (doy - 15) / 365.25),
              "environment": 1 + 0.35 * np.cos(2 * np.pi * (doy - 200) / 365.25),
              "elderly_care": 1 + 0.25 * np.cos(2 * np.pi * (doy - 15) / 365.25)
              }.get(category, 1 + 0.1 * np.cos(2 * np.pi * (doy - 190) / 365.25))
    week = np.where(weekend, 1.3 if category in ("neighbour_dispute", "parking",
                                                 "consumer_dispute", "public_security") else 0.85, 1.0)
    return season * week


def sample_events(n: int, days: pd.DatetimeIndex, start_offset_s: float, end_offset_s: float,
                  building_xy: np.ndarray, weights: dict[str, np.ndarray], alarm_xy: np.ndarray,
                  alarm_building: np.ndarray, road_xy: np.ndarray,
                  rng: np.random.Generator) -> Events:
    """Draw channel, category, time and place of ``n`` events (not yet sorted)."""
    channel = np.asarray(CHANNELS, dtype=object)[rng.choice(5, n, p=_CHANNEL_P)]
    if len(alarm_xy) == 0:
        channel[channel == "smart_alarm"] = "patrol"
    category = np.empty(n, dtype=object)
    for c, mix in enumerate(_MIX):
        m = channel == CHANNELS[c]
        category[m] = np.asarray(CATEGORIES, dtype=object)[rng.choice(10, int(m.sum()), p=mix)]
    category[channel == "smart_alarm"] = "fire_hazard"
    severity = np.empty(n, dtype=np.int64)
    for cat, p in _SEVERITY.items():
        m = category == cat
        severity[m] = rng.choice(4, int(m.sum()), p=np.asarray(p) / sum(p)) + 1

    # When: day by category season/weekday, hour by channel, inside [start, end).
    reported = np.full(n, -1.0)
    todo = np.arange(n)
    while len(todo):
        for cat in CATEGORIES:
            m = todo[category[todo] == cat]
            w = _day_weights(cat, days)
            d = rng.choice(len(days), len(m), p=w / w.sum())
            reported[m] = d * 86400.0
        hourly = np.where((channel[todo] == "patrol")[:, None], _HOURLY_PATROL,
                          np.where((channel[todo] == "smart_alarm")[:, None], _HOURLY_ALARM,
                                   _HOURLY))
        cum = np.cumsum(hourly, axis=1)
        hour = (cum < rng.random(len(todo))[:, None] * cum[:, -1:]).sum(axis=1)
        reported[todo] += hour * 3600.0 + rng.integers(0, 3600, len(todo))
        ok = (reported[todo] >= start_offset_s) & (reported[todo] < end_offset_s)
        todo = todo[~ok]

    # Where: alarms at their devices; otherwise hotspots or population-weighted background.
    xy = np.zeros((n, 2))
    building = np.full(n, -1, dtype=np.int64)
    alarm = channel == "smart_alarm"
    pick = rng.integers(0, max(len(alarm_xy), 1), int(alarm.sum()))
    xy[alarm] = alarm_xy[pick] if len(alarm_xy) else 0.0
    building[alarm] = alarm_building[pick] if len(alarm_xy) else -1
    for cat in CATEGORIES:
        m = np.flatnonzero((category == cat) & ~alarm)
        if len(m) == 0:
            continue
        if cat == "road_facility":
            hub = road_xy[rng.choice(len(road_xy), min(4, len(road_xy)), replace=False)]
            near = rng.random(len(m)) < 0.4
            anchor = np.where(near[:, None], hub[rng.integers(0, len(hub), len(m))], np.nan)
            r = rng.integers(0, len(road_xy), len(m))
            if near.any():  # hotspot: the road point nearest a jittered hub
                tree = cKDTree(road_xy)
                jit = anchor[near] + rng.normal(0, 120, (int(near.sum()), 2))
                r[near] = tree.query(jit)[1]
            xy[m] = road_xy[r] + rng.normal(0, 1.5, (len(m), 2))
            continue
        w = weights[cat]
        p = w / w.sum()
        hubs = rng.choice(len(p), min(int(rng.integers(3, 7)), len(p)), replace=False, p=p)
        sigma = rng.uniform(60, 200, len(hubs))
        in_hot = rng.random(len(m)) < 0.45
        h = rng.integers(0, len(hubs), len(m))
        raw = building_xy[hubs[h]] + rng.normal(0, 1, (len(m), 2)) * sigma[h][:, None]
        b = rng.choice(len(p), len(m), p=p)
        attach = ~in_hot | (rng.random(len(m)) < 0.6)
        if in_hot.any():  # hotspot events attached to a building take the one nearest the draw
            b[in_hot] = cKDTree(building_xy).query(raw[in_hot])[1]
        building[m[attach]] = b[attach]
        xy[m] = np.where(attach[:, None], np.nan, raw)
    return Events(channel, category, severity, reported, xy, building)


@dataclass(frozen=True)
class Lifecycle:
    dispatched: np.ndarray  # seconds since events_start's midnight (nan: not reached by as_of)
    accepted: np.ndarray
    on_site: np.ndarray
    resolved: np.ndarray
    closed: np.ndarray
    status: np.ndarray


def lifecycle(channel: np.ndarray, category: np.ndarray, reported: np.ndarray, as_of_s: float,
              rng: np.random.Generator) -> Lifecycle:
    """Stage times: log-normal delays, ~6 min median to on site, everything after ``as_of`` unset."""
    n = len(channel)
    patrol = channel == "patrol"
    alarm = channel == "smart_alarm"
    d1 = rng.lognormal(np.log(np.where(patrol, 0.3, np.where(alarm, 0.5, 2.2))), 0.7, n)
    d2 = rng.lognormal(np.log(np.where(patrol, 0.2, 1.0)), 0.6, n)
    d3 = rng.lognormal(np.log(np.where(patrol, 0.5, 4.2)), 0.75, n)
    med = np.array([_RESOLVE_MIN[c] for c in category], dtype=float)
    slow = rng.random(n) < 0.06  # cases that drag on for days or weeks
    d4 = rng.lognormal(np.log(med), 0.9, n) * np.where(slow, 25.0, 1.0)
    d5 = rng.lognormal(np.log(3.5 * 24 * 60.0), 0.8, n)  # review and call-back before closing
    t = np.cumsum(np.c_[d1, d2, d3, d4, d5] * 60.0, axis=1) + reported[:, None]
    t = np.round(t)
    t[t > as_of_s] = np.nan
    reached = ~np.isnan(t)
    status = np.select([reached[:, 4], reached[:, 3], reached[:, 2]],
                       ["closed", "resolved", "on_site"], default="reported").astype(object)
    return Lifecycle(t[:, 0], t[:, 1], t[:, 2], t[:, 3], t[:, 4], status)


def external_ids(channel: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Ticket numbers unique per channel: prefix + yyyymmdd + sequence of that day."""
    frame = pd.DataFrame({"channel": channel, "day": day})
    seq = frame.groupby(["channel", "day"], sort=False).cumcount().to_numpy() + 1
    out = np.empty(len(channel), dtype=object)
    for ch, (prefix, width) in _EXTERNAL.items():
        m = channel == ch
        sep = "-" if prefix.endswith("-") and ch != "hotline_12345" else ""
        out[m] = [f"{prefix}{d}{sep}{s:0{width}d}" for d, s in zip(day[m], seq[m], strict=True)]
    return out


def texts(category: np.ndarray, channel: np.ndarray, place: np.ndarray,
          rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Short Chinese title and a one-sentence description."""
    title = np.empty(len(category), dtype=object)
    for cat, options in _TITLES.items():
        m = category == cat
        title[m] = np.asarray(options, dtype=object)[rng.integers(0, len(options), int(m.sum()))]
    title[channel == "smart_alarm"] = "智慧烟感报警"
    prefix = np.array([_PREFIX[c] for c in channel], dtype=object)
    desc = prefix + place + title + "，请尽快核实处理。"
    return title, desc
