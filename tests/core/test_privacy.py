import numpy as np
import pandas as pd

from gridmap.core.privacy import mask_frame, mask_id_card, mask_name, mask_phone


def test_masks_hide_what_they_should():
    assert mask_name("张三丰") == "张**"
    assert mask_name("张") == "*"  # a one-character name would otherwise be shown whole
    assert mask_id_card("330106199001011234") == "330106********1234"
    assert mask_phone("13812345678") == "138****5678"
    assert mask_phone("86123456") == "861*3456"  # a landline with its 8 digits


def test_a_value_too_short_to_keep_anything_of_is_masked_whole():
    # a 7-digit landline (no area code) or a 10-character number kept head + tail = everything before
    assert mask_phone("8612345") == "*******"
    assert mask_id_card("3301061990") == "**********"
    assert mask_id_card("33010619901") == "330106*9901"
    assert mask_name("") == "" and mask_phone("") == ""


def test_masks_take_missing_values():
    for fn in (mask_name, mask_id_card, mask_phone):
        assert fn(None) is None
        assert fn(np.nan) is None
        assert fn(pd.NA) is None
    out = mask_frame(pd.DataFrame({"name": ["李四", None], "phone": [np.nan, "13812345678"]}))
    assert out.name.iloc[0] == "李*" and out.phone.iloc[1] == "138****5678"
    assert out.name.isna().iloc[1] and out.phone.isna().iloc[0]
