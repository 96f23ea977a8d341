import numpy as np
import pandas as pd

from gridmap.core.privacy import mask_frame, mask_id_card, mask_name, mask_phone


def test_masks_hide_what_they_should():
    assert mask_name("张三丰") == "张**"
    assert mask_name("张") == "*"  # a one-character name would otherwise be shown whole
    assert mask_id_card("330106199001011234") == "330106********1234"
    assert mask_phone("13812345678") == "138****5678"


def test_masks_take_missing_values():
    for fn in (mask_name, mask_id_card, mask_phone):
        assert fn(None) is None
        assert fn(np.nan) is None
        assert fn(pd.NA) is None
    out = mask_frame(pd.DataFrame({"name": ["李四", None], "phone": [np.nan, "13812345678"]}))
    assert out.name.iloc[0] == "李*" and out.phone.iloc[1] == "138****5678"
    assert out.name.isna().iloc[1] and out.phone.isna().iloc[0]
