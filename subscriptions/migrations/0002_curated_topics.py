"""The curated topics shipped with the service. Editable in the admin afterwards; keywords
are one phrase per line and are matched word-boundary aware, plural and hyphen tolerant."""

from django.db import migrations

TOPICS = [
    ("llm-reasoning", "LLM reasoning", "Chain-of-thought, math and logical reasoning, test-time compute in language models.",
     ["reasoning", "reasoning model", "large reasoning model", "LRM", "chain-of-thought", "CoT", "long CoT", "test-time scaling", "test-time compute", "inference-time scaling", "mathematical reasoning", "math", "mathematics", "mathematician", "theorem proving", "logical reasoning", "deductive reasoning", "thinking", "overthinking", "problem solving", "reasoning trace"]),
    ("agents", "Agents and tool use", "LLM agents, tool use, web and GUI agents, multi-agent systems.",
     ["agent", "agentic", "multi-agent", "LLM agent", "AI agent", "tool use", "tool calling", "function calling", "tool learning", "web agent", "GUI agent", "computer use", "deep research", "browsing", "MCP", "agentic search", "agent skills", "task planning", "long-horizon planning"]),
    ("multimodal", "Multimodal models", "Vision-language models and models that read images, video and text together.",
     ["multimodal", "multi-modal", "vision-language", "vision language model", "VLM", "MLLM", "LMM", "LVLM", "visual question answering", "VQA", "image understanding", "video understanding", "video comprehension", "visual reasoning", "visual grounding", "omni-modal", "omni", "audio-visual", "cross-modal", "image-text", "document understanding", "OCR", "chart understanding", "visual perception"]),
    ("image-generation", "Image generation and editing", "Diffusion, autoregressive and flow models that create or edit images.",
     ["image generation", "text-to-image", "image editing", "diffusion model", "latent diffusion model", "flow matching", "rectified flow", "image synthesis", "inpainting", "subject-driven generation", "personalized generation", "visual generation", "unified generation", "GAN", "image tokenizer", "visual tokenizer", "consistency model", "few-step generation", "diffusion distillation", "face generation", "image generator"]),
    ("video-generation", "Video generation", "Text-to-video, image-to-video, world models and video editing.",
     ["video generation", "text-to-video", "image-to-video", "video diffusion", "video synthesis", "video editing", "world model", "talking head", "talking video", "avatar", "human animation", "animation", "camera control", "video generator", "video background replacement"]),
    ("speech-audio", "Speech and audio", "Speech recognition and synthesis, music and audio generation and understanding.",
     ["speech", "audio", "text-to-speech", "TTS", "ASR", "speech recognition", "voice", "music", "spoken", "sound", "singing", "speech language model", "MIDI", "piano", "audio generation"]),
    ("robotics", "Robotics and embodied AI", "Robot learning, vision-language-action models, manipulation and navigation.",
     ["robot", "robotics", "robotic", "embodied", "manipulation", "vision-language-action", "VLA", "navigation", "locomotion", "humanoid", "autonomous driving", "driving", "grasping", "sim-to-real", "world action model", "action model"]),
    ("reinforcement-learning", "Reinforcement learning", "RL for language models and agents, reward models, policy optimization.",
     ["reinforcement learning", "RL", "RLHF", "RLVR", "reward model", "reward modeling", "reward", "policy optimization", "PPO", "GRPO", "DPO", "preference optimization", "policy gradient", "verifiable rewards", "self-play", "inverse reinforcement learning", "off-policy", "on-policy"]),
    ("efficiency", "Efficient training and inference", "Quantization, distillation, sparsity, long context, faster decoding and cheaper training.",
     ["efficient inference", "efficient training", "inference efficiency", "training efficiency", "computational efficiency", "reasoning efficiency", "token efficiency", "memory efficiency", "memory-efficient", "compute-efficient", "quantization", "pruning", "token pruning", "distillation", "knowledge distillation", "sparse", "sparsity", "mixture of experts", "mixture-of-experts", "MoE", "KV cache", "speculative decoding", "inference acceleration", "acceleration", "speedup", "low-rank", "LoRA", "parameter-efficient", "model compression", "long context", "long-context", "linear attention", "sparse attention", "state space model", "Mamba", "latency", "throughput", "scaling law", "GPU kernel", "FLOPs", "offloading", "single GPU"]),
    ("alignment-safety", "Alignment and safety", "Alignment, safety, jailbreaks, hallucination, interpretability and trustworthy AI.",
     ["AI safety", "safety", "jailbreak", "red teaming", "harmful", "hallucination", "interpretability", "interpretable", "mechanistic interpretability", "trustworthy", "social bias", "debiasing", "stereotype", "fairness", "privacy", "anonymization", "watermark", "guardrail", "refusal", "deception", "unlearning", "adversarial attack", "backdoor", "LLM alignment", "AI alignment", "value alignment", "safety alignment", "human values", "misalignment", "reward hacking", "sycophancy", "toxicity", "model stealing", "attack", "security"]),
    ("retrieval-rag", "Retrieval and RAG", "Retrieval-augmented generation, search, embeddings and knowledge.",
     ["retrieval", "retrieval-augmented", "retrieval-augmented generation", "RAG", "retriever", "reranking", "reranker", "text embedding", "embedding model", "generalist embedding", "dense retrieval", "vector search", "semantic search", "web search", "search engine", "agentic search", "knowledge graph", "knowledge base", "question answering", "information retrieval", "long-term memory", "memory retrieval", "agent memory", "memory system", "LLM memory", "knowledge internalization", "fact-seeking"]),
    ("code", "Code generation", "Code LLMs, program synthesis, software engineering agents.",
     ["code generation", "coding", "code LLM", "code model", "coding agent", "code agent", "source code", "program synthesis", "software engineering", "SWE-bench", "programming language", "competitive programming", "code repository", "repository-level", "debugging", "compiler", "GPU kernel", "CUDA", "kernel generation", "text-to-SQL", "code completion", "unit test"]),
    ("evaluation", "Evaluation and benchmarks", "New benchmarks, datasets, evaluation methods and leaderboards.",
     ["benchmark", "bench", "benchmarking", "evaluation", "evaluating", "leaderboard", "dataset", "LLM-as-a-judge", "judge", "human evaluation", "evaluation framework", "evaluation protocol", "test suite", "arena"]),
    ("vision-3d", "3D and computer vision", "3D reconstruction and generation, Gaussian splatting, segmentation, detection, depth.",
     ["3D", "4D", "Gaussian splatting", "3DGS", "NeRF", "neural radiance field", "3D reconstruction", "scene reconstruction", "point cloud", "mesh", "depth estimation", "segmentation", "object detection", "pose estimation", "novel view synthesis", "scene understanding", "tracking", "SLAM", "computer vision", "visual encoder", "vision encoder", "optical flow", "monocular", "remote sensing", "image classification", "facial", "face recognition", "face understanding", "face anonymization", "pixel-level"]),
    ("science-medicine", "Science and medicine", "AI for science, biology, chemistry, medicine and health.",
     ["medical", "medicine", "clinical", "health", "healthcare", "biology", "biomedical", "protein", "molecule", "molecular", "chemistry", "drug", "genomics", "scientific", "science", "scientist", "physics", "quantum", "materials", "weather", "climate", "radiology", "pathology", "time series", "forecasting", "geospatial", "earth observation", "astronomy"]),
    ("continual-learning", "Continual and self-improving learning", "Continual learning, self-improvement, self-evolving agents, lifelong and meta learning.",
     ["continual learning", "lifelong learning", "catastrophic forgetting", "self-improvement", "self-improving", "self-evolving", "self-evolution", "meta-learning", "meta reinforcement learning", "test-time training", "online learning", "curriculum learning", "curriculum", "synthetic data", "self-training", "skill library", "skill learning", "skill evolution", "self-reflection", "co-evolution"]),
    ("education", "Education and language learning", "AI tutors, learning sciences, education and multilingual language technology.",
     ["education", "educational", "tutor", "tutoring", "students", "learning analytics", "classroom", "university-level", "homework", "self-regulated learning", "multilingual", "bilingual", "low-resource language", "translation", "machine translation", "cross-lingual", "language learning"]),
    ("nlp-foundations", "Language models and NLP", "Foundation language models, architectures, tokenizers, instruction tuning and text tasks.",
     ["large language model", "language model", "LLM", "language modeling", "transformer language model", "instruction tuning", "instruction following", "LLM pretraining", "LLM post-training", "text generation", "summarization", "open-source model", "open-weight", "technical report", "diffusion language model", "in-context learning", "prompting", "prompt engineering", "personality", "NLP", "natural language processing", "tokenization", "text classification", "question generation"]),
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
