"""Shared fixtures: tiny models built in the test (never the network)."""

from __future__ import annotations

import os
import sys

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Threads of the test processes (and of the CLI subprocesses the tests start, which inherit these),
# unless the caller sets the variables. The test models are tiny (hidden 32): a second OpenMP thread
# buys nothing, and a waiting thread that spins steals the core the working one needs. Measured on
# the 2-core test machine: the tiny qa-gen training 90-250 s with torch's default (2 spinning
# threads) at load average 2-6, 12-19 s with one thread; `scripts/gpu_check.py --quick` (which sets
# 2 threads itself) 75 s idle with spinning threads, 23 s with passive waiting.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", os.environ["OMP_NUM_THREADS"])
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
if "torch" in sys.modules and os.environ["OMP_NUM_THREADS"].split(",")[0].strip().isdigit():
    # imported before this file (by a plugin): the variables above came too late for it
    sys.modules["torch"].set_num_threads(max(1, int(os.environ["OMP_NUM_THREADS"].split(",")[0])))

SHARED_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")

TINY_CHARS = list("的一是了我不人在他有这个上们来到时大地为子中你说生国年着就那和要她出也得里后自以会家可下而过天去能对小多然于心学么之都好看起发当没成只如事把还用第样道想作种开美总从无情己面最女但现前些所同日手又行意动方期它头经长儿回位分爱老因很给名法间斯知世什两次使身者被高已亲其进此话常与活正感见明问力理尔点文几定本公特做外孩相西果走将月十实向声车全信重三机工物气每并别真打太新比才便夫再书部水像眼等体却加电主界门利海受听表德少克代员许先口由死安写性马光白或住难望教命花结乐色更拉东神记处让母父应直字场平报友关放至张认接告入笑内英军候民岁往何度山觉路带万男边风解叫任金快原吃妈变通师立象数四失满战远格士音轻目条呢病始达深完今提求清王化空业思切怎非找片罗钱吗语元喜曾离飞科言干流欢约各即指合反题必该论交终林请医晚制球决传画保读运及则房早院量苦火布品近坐产答星精视五连司巴奇管类未朋且婚台夜青北队久乎越观落尽形影红爸百令周吧识步希亚术留市半热送兴造谈容极随演收首根讲整式取照办强石古华拿计您装似足双妻尼转诉米称丽客南领节衣站黑刻统断福城故历惊脸选包紧争另建维绝树系伤示愿持千史谁准联妇纪基买志静阿诗独复痛消社算义竟确酒需单治卡幸兰念举仅钟怕共毛句息功官待究跟穿室易游程号居考突皮哪费倒价图具刚脑永歌响商礼细专黄块脚味灵改据般破引食仍存众注笔甚某沉血备习校默务土微娘须试怀料调广苏显赛查密议底列富梦错座参八除跑亮假印设线温虽掉京初养香停际致阳纸李纳验助激够严证帝饭忘趣支春集丈木研班普导顿睡展跳获艺六波察群皇段急庭创区奥器谢弟店否害草排背止组州朝封睛板角况曲馆育忙质河续哥呼若推境遇雨标姐充围案伦护冷警贝著雪索剧啊船险烟依斗值帮汉慢佛肯闻唱沙局伯族低玩资屋击速顾泪洲团圣旁堂兵七露园牛哭旅街劳型烈姑陈莫鱼异抱宝权鲁简态级票怪寻杀律胜份汽右洋范床舞秘午登楼贵吸责例追较职属渐左录丝牙党继托赶章智冲叶胡吉卖坚喝肉遗救修松临藏担戏善卫药悲敢靠伊村戴词森耳差短祖云规窗散迷油旧适乡架恩投弹铁博雷府压超负勒杂醒洗采毫嘴毕九冰既状乱景席珍童顶派素脱农疑练野按犯拍征坏骨余承置臓彩灯巨琴免环姆暗换技翻束增忍餐洛塞缺忆判欧层付阵玛批岛项狗休懂武革良恶恋委拥娜妙探呀营退摇弄桌熟诺宣银势奖宫忽套康供优课鸟喊降夏困刘罪亡鞋健模败伴守挥鲜财孤枪禁恐伙杰迹妹藸遍盖副坦牌江顺秋萨菜划授归浪听凡预奶雄升碃编典袋莱含盛济蒙棋端腿招释介烧误乾坤。，！？、；：“”（）《》")


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory):
    """A randomly initialised 2-layer, 32-wide Chinese BERT MLM with a character vocabulary,
    saved as a normal Hugging Face directory (the code path, not real behaviour)."""
    import torch
    from transformers import BertConfig, BertForMaskedLM

    from nlptool.mlm import SPECIAL_TOKENS, make_tokenizer

    out = tmp_path_factory.mktemp("tiny-bert")
    vocab = SPECIAL_TOKENS + list(dict.fromkeys(TINY_CHARS)) + list("abcdefghijklmnopqrstuvwxyz0123456789") + [
        "##" + c for c in "abcdefghijklmnopqrstuvwxyz0123456789"
    ]
    tok = make_tokenizer(vocab, out)
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64, pad_token_id=0,
    )
    model = BertForMaskedLM(cfg)
    model.eval()
    model.save_pretrained(out, safe_serialization=True)
    return str(out)


def shared_data_dir() -> str:
    """The shared evaluation/training data directory: ``$NLPTOOL_SHARED_DATA``, default
    ``../shared/data`` relative to the repository root (the same rule as the benchmarks)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.path.abspath(os.environ.get("NLPTOOL_SHARED_DATA") or os.path.join(root, "..", "shared", "data"))


@pytest.fixture(scope="session")
def shared_data():
    """Path of the shared data directory; the test is skipped, with the reason printed on stdout,
    when it is absent. Use ``os.path.join(shared_data, "sub", "file")`` and check sub-paths too."""
    path = shared_data_dir()
    if not os.path.isdir(path):
        msg = f"shared data not found at {path} (set NLPTOOL_SHARED_DATA)"
        print(f"SKIP: {msg}")
        pytest.skip(msg)
    return path


def hypothesis_profiles() -> None:
    """Hypothesis example counts: ``ci`` (default, small: ``make test``) and ``fuzz`` (``make fuzz``),
    chosen with ``HYPOTHESIS_PROFILE``."""
    try:
        from hypothesis import HealthCheck, settings
    except ImportError:  # pragma: no cover - hypothesis is in the test extra
        return
    common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                                        HealthCheck.data_too_large])
    settings.register_profile("ci", max_examples=15, derandomize=True, **common)
    settings.register_profile("fuzz", max_examples=400, print_blob=True, database=None, **common)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


hypothesis_profiles()


#: A toy unigram dictionary (jieba format: word count) for tokenize-sample and the worker/engine tests.
DICT = "我 10\n爱 10\n北京 20\n北 5\n京 5\n天安门 10\n天安 3\n门 4\n我爱 2\n"


@pytest.fixture()
def dict_path(tmp_path):
    """:data:`DICT` written to ``tmp_path/dict.txt``; its path as a string."""
    p = tmp_path / "dict.txt"
    p.write_text(DICT, encoding="utf-8")
    return str(p)
