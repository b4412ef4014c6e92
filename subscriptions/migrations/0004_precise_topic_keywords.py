"""Precise keyword lists for the curated topics (issue 10): phrases that name a topic rather
than mention it. Generic words that put "Language models and NLP" on almost every paper
("LLM", "language model") count only in titles now (`title:` lines); time series and
forecasting no longer mean science; paper names (`SegAgent`, `KernelBench`) are read as words
by the matcher. A topic whose keywords an operator already changed is left alone."""

import importlib

from django.db import migrations

KEYWORDS = {
    "llm-reasoning": [
     "reasoning", "reasoning model", "large reasoning model", "LRM", "chain-of-thought", "CoT", "long CoT",
     "test-time scaling", "test-time compute", "inference-time scaling", "inference-time compute",
     "mathematical reasoning", "math reasoning", "math", "mathematics", "mathematical", "theorem proving",
     "theorem prover", "formal proof", "logical reasoning", "deductive reasoning", "multi-step reasoning",
     "reasoning trace", "reasoning chain", "reasoning path", "thinking", "overthinking", "slow thinking", "o1",
     "R1", "self-consistency", "process reward model", "PRM", "GSM8K", "AIME", "olympiad", "puzzle",
     "problem solving", "latent reasoning", "implicit reasoning", "reasoning ability", "reasoning capability"],
    "agents": [
     "agent", "agentic", "multi-agent", "tool use", "tool calling", "tool-calling", "function calling",
     "tool learning", "tool-augmented", "tool-integrated", "web agent", "GUI agent", "computer use",
     "computer-use", "deep research", "web browsing", "browsing", "MCP", "Model Context Protocol",
     "agentic search", "task planning", "long-horizon planning", "long-horizon task", "ReAct",
     "autonomous agent", "agent framework", "agent skills", "multi-turn interaction", "terminal task",
     "coding agent", "code agent", "search agent", "research agent", "agent memory", "personal agent",
     "memory agent", "assistant agent"],
    "multimodal": [
     "multimodal", "multi-modal", "vision-language", "vision language model", "VLM", "MLLM", "LMM", "LVLM",
     "VL", "visual question answering", "VQA", "image understanding", "video understanding",
     "video comprehension", "video question answering", "visual reasoning", "visual grounding", "omni-modal",
     "omni", "audio-visual", "cross-modal", "image-text", "image captioning", "captioning",
     "document understanding", "OCR", "chart understanding", "visual perception", "visual instruction tuning",
     "CLIP", "visual tokens", "vision encoder", "visual encoder", "LLaVA", "GPT-4V", "GPT-4o",
     "egocentric video", "long video"],
    "image-generation": [
     "image generation", "text-to-image", "T2I", "image editing", "diffusion model", "diffusion transformer",
     "DiT", "latent diffusion", "flow matching", "rectified flow", "image synthesis", "inpainting",
     "outpainting", "subject-driven generation", "personalized generation", "customized generation",
     "visual generation", "unified generation", "autoregressive image generation", "GAN", "image tokenizer",
     "visual tokenizer", "consistency model", "few-step generation", "few-step", "diffusion distillation",
     "style transfer", "super-resolution", "image restoration", "ControlNet", "Stable Diffusion", "FLUX",
     "image generator", "generated images", "face generation", "identity preservation", "virtual try-on",
     "classifier-free guidance", "title:diffusion", "image tokenization", "visual tokenization",
     "autoregressive visual generation"],
    "video-generation": [
     "video generation", "text-to-video", "T2V", "image-to-video", "I2V", "video diffusion",
     "video diffusion model", "video synthesis", "video editing", "world model", "video world model",
     "talking head", "talking video", "avatar", "human animation", "character animation", "animation",
     "camera control", "video generator", "long video generation", "Sora", "frame interpolation",
     "generated videos", "video generative model", "motion control", "video inpainting", "video relighting",
     "video matting", "video-to-video", "motion transfer", "video customization"],
    "speech-audio": [
     "speech", "audio", "text-to-speech", "TTS", "ASR", "speech recognition", "speech synthesis", "voice",
     "music", "spoken", "sound", "singing", "speech language model", "spoken dialogue", "MIDI", "piano",
     "audio generation", "music generation", "speaker", "acoustic", "audio language model", "Whisper",
     "audio codec", "speech tokenizer"],
    "robotics": [
     "robot", "robotics", "robotic", "embodied", "robot manipulation", "robotic manipulation",
     "dexterous manipulation", "dexterous", "vision-language-action", "VLA", "navigation",
     "vision-and-language navigation", "locomotion", "humanoid", "autonomous driving", "self-driving",
     "driving", "grasping", "sim-to-real", "world action model", "visuomotor", "imitation learning",
     "teleoperation", "quadruped", "end-effector", "embodiment"],
    "reinforcement-learning": [
     "reinforcement learning", "RL", "RLHF", "RLVR", "RLAIF", "reward model", "reward modeling", "reward",
     "policy optimization", "PPO", "GRPO", "DAPO", "DPO", "preference optimization", "policy gradient",
     "verifiable rewards", "verifiable reward", "self-play", "inverse reinforcement learning", "off-policy",
     "on-policy", "Q-learning", "actor-critic", "value function", "offline RL", "reward shaping",
     "process reward", "outcome reward", "rule-based reward", "rollouts", "advantage estimation"],
    "efficiency": [
     "efficient inference", "efficient training", "inference efficiency", "training efficiency",
     "computational efficiency", "reasoning efficiency", "token efficiency", "memory efficiency",
     "memory-efficient", "compute-efficient", "quantization", "quantized", "pruning", "token pruning",
     "distillation", "knowledge distillation", "sparsity", "mixture of experts", "mixture-of-experts", "MoE",
     "KV cache", "speculative decoding", "inference acceleration", "acceleration", "accelerate", "speedup",
     "LoRA", "parameter-efficient", "model compression", "compression", "long context", "long-context",
     "linear attention", "sparse attention", "state space model", "Mamba", "latency", "throughput",
     "GPU kernel", "FLOPs", "offloading", "single GPU", "early exit", "token merging", "token compression",
     "FlashAttention", "serving", "inference cost", "computational cost", "memory footprint", "prefill",
     "decoding speed", "few-step", "diffusion distillation", "token budget", "thinking budget", "budget"],
    "alignment-safety": [
     "AI safety", "safety", "safe", "unsafe", "jailbreak", "red teaming", "red-teaming", "harmful",
     "harmlessness", "hallucination", "factuality", "interpretability", "mechanistic interpretability",
     "explainability", "sparse autoencoder", "SAE", "activation steering", "steering vector", "probing",
     "trustworthy", "social bias", "debiasing", "stereotype", "fairness", "privacy", "membership inference",
     "watermark", "watermarking", "guardrail", "guard model", "content moderation", "refusal", "deception",
     "unlearning", "machine unlearning", "adversarial attack", "backdoor", "data poisoning",
     "prompt injection", "LLM alignment", "AI alignment", "value alignment", "safety alignment",
     "human values", "misalignment", "reward hacking", "sycophancy", "toxicity", "toxic", "model stealing",
     "attack", "security", "scalable oversight", "AI risk", "steering", "representation engineering",
     "linear probe", "latent direction", "feature attribution", "circuit", "harmful content", "over-refusal"],
    "retrieval-rag": [
     "retrieval", "retrieval-augmented", "retrieval-augmented generation", "RAG", "retriever", "reranking",
     "reranker", "text embedding", "embedding model", "embeddings", "dense retrieval", "vector search",
     "semantic search", "web search", "search engine", "search agent", "agentic search", "knowledge graph",
     "knowledge base", "open-domain question answering", "multi-hop question answering", "multi-hop",
     "information retrieval", "long-term memory", "memory retrieval", "agent memory", "memory system",
     "LLM memory", "memory", "knowledge internalization", "fact-seeking", "knowledge-intensive",
     "document retrieval", "search", "citation", "grounded generation"],
    "code": [
     "code generation", "coding", "code LLM", "code model", "coding agent", "code agent", "source code",
     "program synthesis", "software engineering", "SWE-bench", "SWE", "programming", "programming language",
     "competitive programming", "code repository", "repository-level", "codebase", "debugging", "bug",
     "compiler", "GPU kernel", "CUDA", "kernel generation", "text-to-SQL", "SQL", "code completion",
     "unit test", "HumanEval", "LiveCodeBench", "code execution", "code reasoning", "Verilog",
     "program repair"],
    "evaluation": [
     "benchmark", "bench", "benchmarking", "evaluation", "evaluating", "leaderboard", "dataset",
     "LLM-as-a-judge", "judge", "human evaluation", "evaluation framework", "evaluation protocol",
     "evaluation suite", "test suite", "arena", "human-annotated", "annotated", "test set", "SWE-bench"],
    "vision-3d": [
     "3D", "4D", "Gaussian splatting", "3DGS", "NeRF", "neural radiance field", "3D reconstruction",
     "scene reconstruction", "point cloud", "mesh", "depth estimation", "segmentation",
     "semantic segmentation", "object detection", "pose estimation", "novel view synthesis",
     "scene understanding", "tracking", "SLAM", "computer vision", "optical flow", "monocular", "multi-view",
     "stereo", "camera pose", "remote sensing", "image classification", "image recognition",
     "face recognition", "visual representation learning", "vision transformer", "ViT", "vision backbone",
     "video recognition", "action recognition", "pixel-level", "visual backbone", "vision foundation model",
     "video backbone", "video classification"],
    "science-medicine": [
     "medical", "medicine", "clinical", "health", "healthcare", "biology", "biological", "biomedical",
     "protein", "molecule", "molecular", "chemistry", "chemical", "drug", "drug discovery", "genomics",
     "genomic", "DNA", "RNA", "single-cell", "scientific", "science", "scientist", "scientific discovery",
     "physics", "quantum", "materials", "materials science", "weather", "climate", "radiology", "pathology",
     "patient", "EHR", "MRI", "X-ray", "geospatial", "earth observation", "astronomy", "neuroscience", "fMRI",
     "ecology", "mathematician"],
    "continual-learning": [
     "continual learning", "continual", "lifelong learning", "lifelong", "catastrophic forgetting",
     "forgetting", "self-improvement", "self-improving", "self-evolving", "self-evolution", "self-evolve",
     "meta-learning", "meta reinforcement learning", "test-time training", "test-time adaptation",
     "online learning", "curriculum learning", "self-training", "skill library", "skill learning",
     "skill evolution", "co-evolution", "experience replay", "incremental learning", "experience accumulation",
     "continual improvement", "title:evolution", "model merging", "knowledge composition", "experience-driven"],
    "education": [
     "education", "educational", "tutor", "tutoring", "students", "learning analytics", "classroom",
     "university-level", "homework", "self-regulated learning", "multilingual", "bilingual",
     "low-resource language", "low-resource languages", "translation", "machine translation", "cross-lingual",
     "language learning", "teachers", "pedagogical", "learners", "K-12", "curriculum design", "course"],
    "nlp-foundations": [
     "language modeling", "language modelling", "pretraining", "pre-training", "instruction tuning",
     "instruction following", "instruction data", "post-training", "text generation", "summarization",
     "open-source model", "open-weight", "technical report", "diffusion language model", "discrete diffusion",
     "in-context learning", "prompting", "prompt engineering", "personality", "persona", "NLP",
     "natural language processing", "tokenization", "tokenizer", "text classification", "question generation",
     "next-token prediction", "autoregressive language model", "transformer architecture",
     "attention mechanism", "scaling law", "linguistic", "dialogue", "chatbot", "language understanding",
     "text-to-text", "masked language model", "model editing", "embedding layer", "perplexity",
     "title:language model", "title:large language model", "title:transformer", "title:mixture of experts",
     "title:MoE", "instruction synthesis", "user instructions", "synthetic instructions"],
}


def _shipped():
    return {slug: "\n".join(keywords) for slug, _name, _description, keywords in importlib.import_module("subscriptions.migrations.0002_curated_topics").TOPICS}


def use_precise_keywords(apps, schema_editor):
    Topic = apps.get_model("subscriptions", "Topic")
    shipped = _shipped()
    for topic in Topic.objects.filter(slug__in=KEYWORDS):
        if topic.keywords == shipped.get(topic.slug):
            topic.keywords = "\n".join(KEYWORDS[topic.slug])
            topic.save(update_fields=["keywords"])


def use_shipped_keywords(apps, schema_editor):
    Topic = apps.get_model("subscriptions", "Topic")
    shipped = _shipped()
    for topic in Topic.objects.filter(slug__in=KEYWORDS):
        if topic.keywords == "\n".join(KEYWORDS[topic.slug]):
            topic.keywords = shipped[topic.slug]
            topic.save(update_fields=["keywords"])


class Migration(migrations.Migration):
    dependencies = [("subscriptions", "0003_subscriber_soft_bounces")]
    operations = [migrations.RunPython(use_precise_keywords, use_shipped_keywords)]
