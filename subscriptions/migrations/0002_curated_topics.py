"""The curated topics shipped with the service. Editable in the admin afterwards; keywords
are one phrase per line and are matched word-boundary aware, plural and hyphen tolerant."""

from django.db import migrations

TOPICS = [
    ("llm-reasoning", "LLM reasoning", "Chain-of-thought, math and logical reasoning, test-time compute in language models.",
     ["reasoning", "chain-of-thought", "chain of thought", "test-time scaling", "test-time compute", "mathematical reasoning", "math", "theorem proving", "logical reasoning", "large reasoning model", "long CoT", "CoT", "thinking", "problem solving", "planning"]),
    ("agents", "Agents and tool use", "LLM agents, tool use, web and GUI agents, multi-agent systems.",
     ["agent", "agentic", "multi-agent", "tool use", "tool calling", "function calling", "web agent", "GUI agent", "computer use", "deep research", "browsing", "autonomous", "workflow", "MCP"]),
    ("multimodal", "Multimodal models", "Vision-language models and models that read images, video and text together.",
     ["multimodal", "vision-language", "VLM", "MLLM", "visual question answering", "VQA", "image understanding", "video understanding", "visual reasoning", "omni", "cross-modal", "image-text", "document understanding", "OCR", "chart"]),
    ("image-generation", "Image generation and editing", "Diffusion, autoregressive and flow models that create or edit images.",
     ["image generation", "text-to-image", "image editing", "diffusion model", "diffusion", "flow matching", "rectified flow", "DiT", "image synthesis", "inpainting", "style transfer", "personalization", "visual generation", "unified generation", "GAN", "image tokenizer"]),
    ("video-generation", "Video generation", "Text-to-video, image-to-video, world models and video editing.",
     ["video generation", "text-to-video", "image-to-video", "video diffusion", "video synthesis", "video editing", "world model", "talking head", "avatar", "animation", "camera control", "long video"]),
    ("speech-audio", "Speech and audio", "Speech recognition and synthesis, music and audio generation and understanding.",
     ["speech", "audio", "text-to-speech", "TTS", "ASR", "speech recognition", "voice", "music", "spoken", "sound", "singing", "speech language model"]),
    ("robotics", "Robotics and embodied AI", "Robot learning, vision-language-action models, manipulation and navigation.",
     ["robot", "robotics", "embodied", "manipulation", "vision-language-action", "VLA", "navigation", "locomotion", "humanoid", "autonomous driving", "driving", "grasping", "sim-to-real"]),
    ("reinforcement-learning", "Reinforcement learning", "RL for language models and agents, reward models, policy optimization.",
     ["reinforcement learning", "RL", "RLHF", "RLVR", "reward model", "reward", "policy optimization", "PPO", "GRPO", "DPO", "preference optimization", "policy gradient", "verifiable rewards", "self-play", "exploration"]),
    ("efficiency", "Efficient training and inference", "Quantization, distillation, sparsity, long context, faster decoding and cheaper training.",
     ["efficient", "efficiency", "quantization", "pruning", "distillation", "sparse", "sparsity", "mixture of experts", "mixture-of-experts", "MoE", "KV cache", "speculative decoding", "inference acceleration", "low-rank", "LoRA", "parameter-efficient", "compression", "long context", "long-context", "linear attention", "latency", "throughput", "memory", "scaling law", "pretraining", "token pruning"]),
    ("alignment-safety", "Alignment and safety", "Alignment, safety, jailbreaks, hallucination, interpretability and trustworthy AI.",
     ["alignment", "safety", "jailbreak", "red teaming", "harmful", "hallucination", "interpretability", "mechanistic", "trustworthy", "bias", "fairness", "privacy", "watermark", "guardrail", "refusal", "deception", "unlearning", "robustness", "adversarial"]),
    ("retrieval-rag", "Retrieval and RAG", "Retrieval-augmented generation, search, embeddings and knowledge.",
     ["retrieval", "retrieval-augmented", "RAG", "retriever", "search", "embedding", "reranking", "knowledge graph", "knowledge base", "question answering", "information retrieval", "memory"]),
    ("code", "Code generation", "Code LLMs, program synthesis, software engineering agents.",
     ["code", "coding", "code generation", "program synthesis", "software engineering", "SWE-bench", "programming", "repository", "debugging", "compiler", "code LLM"]),
    ("evaluation", "Evaluation and benchmarks", "New benchmarks, datasets, evaluation methods and leaderboards.",
     ["benchmark", "evaluation", "leaderboard", "dataset", "eval", "LLM-as-a-judge", "judge", "metric", "human evaluation", "test suite", "arena"]),
    ("vision-3d", "3D and computer vision", "3D reconstruction and generation, Gaussian splatting, segmentation, detection, depth.",
     ["3D", "Gaussian splatting", "NeRF", "neural radiance field", "reconstruction", "point cloud", "mesh", "depth estimation", "segmentation", "object detection", "pose estimation", "novel view synthesis", "scene", "tracking", "SLAM", "computer vision", "visual encoder", "optical flow"]),
    ("science-medicine", "Science and medicine", "AI for science, biology, chemistry, medicine and health.",
     ["medical", "medicine", "clinical", "health", "biology", "protein", "molecule", "chemistry", "drug", "genomics", "scientific", "science", "physics", "materials", "weather", "climate", "radiology", "pathology"]),
    ("continual-learning", "Continual and self-improving learning", "Continual learning, self-improvement, self-evolving agents, lifelong and meta learning.",
     ["continual learning", "lifelong learning", "catastrophic forgetting", "self-improvement", "self-improving", "self-evolving", "self-evolution", "meta-learning", "test-time training", "online learning", "curriculum", "synthetic data", "self-training"]),
    ("education", "Education and language learning", "AI tutors, learning sciences, education and multilingual language technology.",
     ["education", "educational", "tutor", "tutoring", "student", "teacher", "learning analytics", "classroom", "multilingual", "low-resource language", "translation", "machine translation"]),
    ("nlp-foundations", "Language models and NLP", "Foundation language models, architectures, tokenizers, instruction tuning and text tasks.",
     ["large language model", "language model", "LLM", "transformer", "attention", "tokenizer", "instruction tuning", "fine-tuning", "supervised fine-tuning", "SFT", "pre-training", "text generation", "summarization", "open-source model", "technical report", "foundation model"]),
]


def create_topics(apps, schema_editor):
    Topic = apps.get_model("subscriptions", "Topic")
    for order, (slug, name, description, keywords) in enumerate(TOPICS, start=1):
        Topic.objects.update_or_create(
            slug=slug,
            defaults={"name": name, "description": description, "keywords": "\n".join(keywords), "display_order": order * 10},
        )


def remove_topics(apps, schema_editor):
    apps.get_model("subscriptions", "Topic").objects.filter(slug__in=[t[0] for t in TOPICS]).delete()


class Migration(migrations.Migration):
    dependencies = [("subscriptions", "0001_initial")]
    operations = [migrations.RunPython(create_topics, remove_topics)]
