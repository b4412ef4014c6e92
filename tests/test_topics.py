"""Sorting papers into topics: the matching rules, the curated topics on every shipped fixture
(each paper lands somewhere, and the matches a reader checked hold), recomputation when a
topic's keywords change, and the topic report."""

import io

import pytest
from django.core.management import call_command

from newsletter.models import Paper, PaperTopicScore
from newsletter.scraping.run import scrape_file
from newsletter.topics import TITLE_WEIGHT, TopicMatcher, rescore_topic, score_papers
from subscriptions.models import Topic

from .hf_server import API_FILES

pytestmark = pytest.mark.django_db


def matches(keyword: str, text: str) -> bool:
    return bool(TopicMatcher([Topic(keywords=keyword)]).hits(text))


@pytest.mark.parametrize(
    "keyword, text",
    [
        ("agent", "LLM agents learn"),
        ("agent", "multi-agent systems"),
        ("policy", "three policies"),
        ("LLM", "open LLMs"),
        ("DiT", "scaling DiTs"),
        ("chain-of-thought", "long chain of thought traces"),
        ("chain of thought", "Chain-of-Thought prompting"),
        ("multi-agent", "multiagent debate"),
        ("mixture of experts", "a Mixture-of-Experts model"),
        ("reward model", "reward models"),
        ("3D", "3D-aware generation"),
        ("reasoning", "REASONING"),
        ("test-time compute", "Test‑Time Compute"),  # non-breaking hyphen
        ("LoRA", "LoRAs"),
        ("vision-language-action", "Vision-Language-Action (VLA) models"),
    ],
)
def test_keyword_matches(keyword, text):
    assert matches(keyword, text)


@pytest.mark.parametrize(
    "keyword, text",
    [
        ("RL", "a URL list"),
        ("RL", "rl"),  # acronyms match as written
        ("SLAM", "slam dunk"),
        ("RAG", "a rag doll"),
        ("agent", "reagents"),
        ("math", "aftermath"),
        ("code", "decoder"),
        ("reward model", "reward for model"),
        ("3D", "4D"),
        ("reward", "rewarding"),
        ("reward model", "reward. Model"),  # a phrase does not run across punctuation
        ("reasoning model", "reasoning | model"),
        ("LLM", "llm"),
    ],
)
def test_keyword_does_not_match(keyword, text):
    assert not matches(keyword, text)


def test_title_hits_weigh_more(topics):
    matcher = TopicMatcher([Topic(slug="t", name="T", keywords="agent\ndiffusion\ndiffusion model")])

    def score(**fields):
        return matcher.score(Paper(**{"title": "Something", "abstract": "", **fields}))[0]

    in_title = score(title="Agents at work")
    assert in_title.score == TITLE_WEIGHT and in_title.matched == ["agent"]
    assert in_title.score > score(ai_keywords=["LLM agents"]).score > score(abstract="We study agents.").score > 0
    # Repeats in the abstract count a little, up to a cap.
    assert score(abstract="agent " * 2).score == 1.5
    assert score(abstract="agent " * 10).score == 2.0
    # The longer keyword wins where both start.
    assert score(title="Diffusion models").matched == ["diffusion model"]
    assert score(title="Diffusion for models").matched == ["diffusion"]


@pytest.fixture
def fixture_papers(topics):
    for path in API_FILES:
        assert scrape_file(path).status == "ok"
    assert Paper.objects.count() == 110
    return topics


def topics_of(arxiv_id):
    return set(PaperTopicScore.objects.filter(paper__arxiv_id=arxiv_id).values_list("topic__slug", flat=True))


def test_every_fixture_paper_lands_in_a_topic(fixture_papers):
    assert list(Paper.objects.filter(topic_scores__isnull=True).values_list("arxiv_id", "title")) == []
    # Every topic is used, and no topic swallows everything.
    counts = {t.slug: t.paper_scores.count() for t in Topic.objects.all()}
    assert min(counts.values()) >= 3, counts
    assert max(counts.values()) <= 0.5 * 110, counts


# Read and agreed by a person: paper -> topics it must have, topics it must not have.
AGREED = [
    ("2403.06634", {"alignment-safety", "nlp-foundations"}, set()),  # Stealing Part of a Production Language Model
    ("2403.06098", {"video-generation", "evaluation"}, set()),  # VidProM: prompt dataset for text-to-video diffusion
    ("2503.08638", {"speech-audio"}, {"alignment-safety", "image-generation"}),  # YuE: long-form music generation
    ("2506.13585", {"llm-reasoning", "efficiency", "reinforcement-learning"}, set()),  # MiniMax-M1
    ("2506.07961", {"robotics", "multimodal"}, {"alignment-safety"}),  # BridgeVLA (input-output *alignment*)
    ("2506.12915", {"evaluation"}, {"image-generation"}),  # PersonaFeedback: LLM personalization benchmark
    ("2503.08102", {"retrieval-rag"}, {"efficiency"}),  # AI-native Memory 2.0
    ("2608.20336", {"image-generation"}, {"llm-reasoning", "agents"}),  # WithEveryone: *planning* for group image generation
    ("2605.04604", {"science-medicine"}, set()),  # quantum eigensolver
    ("2608.19799", {"code", "agents", "science-medicine", "evaluation"}, set()),  # SWE-bench Science
    ("2608.19854", {"code"}, set()),  # Repo0: code generation
    ("2506.12299", {"alignment-safety", "multimodal"}, set()),  # QGuard: multimodal LLM safety
    ("2605.05242", {"retrieval-rag", "agents"}, set()),  # agentic search
    ("2608.20335", {"vision-3d", "video-generation"}, set()),  # 4DAnyone
    ("2608.19936", {"speech-audio", "evaluation"}, set()),  # ASR benchmark optimization
    ("2602.00095", {"education", "multimodal"}, set()),  # EDU-CIRCUIT-HW
    ("2506.09968", {"education"}, set()),  # SRLAgent: self-regulated learning
    ("2605.06614", {"agents", "continual-learning"}, set()),  # SkillOS: self-evolving agents
    ("2605.04077", {"reinforcement-learning"}, {"alignment-safety"}),  # aggregation *bias* in GRPO
    ("2403.06775", {"image-generation"}, {"code"}),  # FaceChain-SuDe ("code" released)
    ("2605.06663", {"efficiency"}, set()),  # EMO: pretraining mixture of experts
]


def test_matches_a_reader_agrees_with(fixture_papers):
    wrong = []
    for arxiv_id, wanted, unwanted in AGREED:
        found = topics_of(arxiv_id)
        if not wanted <= found or unwanted & found:
            wrong.append(f"{arxiv_id}: missing {sorted(wanted - found)}, unwanted {sorted(unwanted & found)}")
    assert wrong == []


def test_scores_are_recomputed_when_keywords_change(fixture_papers, django_capture_on_commit_callbacks):
    topic = Topic.objects.get(slug="speech-audio")
    before = set(topic.paper_scores.values_list("paper__arxiv_id", flat=True))
    assert "2503.08638" in before  # YuE, via "music"
    with django_capture_on_commit_callbacks(execute=True):
        topic.keywords = "speech recognition\nASR"
        topic.save()
    after = set(topic.paper_scores.values_list("paper__arxiv_id", flat=True))
    assert after == {"2608.19936", "2605.04045"}
    assert PaperTopicScore.objects.get(topic=topic, paper__arxiv_id="2608.19936").matched == ["ASR", "speech recognition"]

    # A name change alone does not rescore; deactivating removes the topic's matches.
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        topic.name = "Speech"
        topic.save()
    assert callbacks == []
    with django_capture_on_commit_callbacks(execute=True):
        topic.active = False
        topic.save()
    assert not topic.paper_scores.exists()


def test_keyword_change_in_the_admin_rescores(fixture_papers, admin_client, django_capture_on_commit_callbacks):
    topic = Topic.objects.get(slug="code")
    assert "2608.19799" in set(topic.paper_scores.values_list("paper__arxiv_id", flat=True))
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            f"/admin/subscriptions/topic/{topic.pk}/change/",
            {"slug": "code", "name": "Code generation", "description": topic.description,
             "keywords": "Verilog", "active": "on", "display_order": topic.display_order},
        )
    assert response.status_code == 302, response.content[:2000]
    assert not topic.paper_scores.exists()


def test_new_topic_is_scored_and_rescore_is_idempotent(fixture_papers, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        topic = Topic.objects.create(slug="mamba", name="State space models", keywords="state space model\nMamba")
    found = set(topic.paper_scores.values_list("paper__arxiv_id", flat=True))
    assert {"2403.06977", "2503.08686"} <= found  # VideoMamba, OmniMamba
    assert rescore_topic(topic) == len(found)
    total = PaperTopicScore.objects.count()
    assert score_papers(Paper.objects.all()) == total


def test_topic_report(fixture_papers):
    out = io.StringIO()
    call_command("topic_report", stdout=out)
    report = out.getvalue()
    assert report.startswith("110 papers, 18 active topics")
    assert "Speech and audio [speech-audio]:" in report
    assert "2503.08638  YuE: Scaling Open Foundation Models for Long-Form Music Generation" in report
    assert "matched: music" in report
    assert "Matched no topic: 0 papers" in report

    Paper.objects.create(arxiv_id="2609.99999", title="On Nothing In Particular")
    out = io.StringIO()
    call_command("topic_report", "--limit", "1", stdout=out)
    assert "Matched no topic: 1 papers\n  2609.99999  On Nothing In Particular" in out.getvalue()
