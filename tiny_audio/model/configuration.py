"""ASRConfig: which encoder and decoder to load, and how the trained projector and LoRA look.

The encoder and decoder are named (a tiny-audio zoo name, a local directory or a Hub id), never
stored: a checkpoint holds only what was trained.
"""

from __future__ import annotations

from typing import Any

from transformers import PretrainedConfig


class ASRConfig(PretrainedConfig):
    model_type = "tiny_audio"

    def __init__(
        self,
        audio_encoder: str = "whisper-tiny.en",
        text_decoder: str = "smollm2-135m-instruct",
        projector_type: str = "mlp",
        projector_pool_stride: int = 4,
        projector_hidden_dim: int = 1024,
        projector_dropout: float = 0.0,
        projector_num_experts: int = 4,
        projector_top_k: int = 2,
        projector_num_queries: int = 4,
        projector_window: int = 16,
        projector_num_layers: int = 2,
        projector_num_heads: int = 8,
        projector_balance_loss_coef: float = 0.01,
        projector_z_loss_coef: float = 0.001,
        encoder_dim: int | None = None,
        decoder_dim: int | None = None,
        embedding_scale: float = 1.0,
        lora_rank: int = 0,
        lora_alpha: int = 32,
        lora_dropout: float = 0.0,
        lora_target_modules: list[str] | None = None,
        encoder_lora_rank: int = 0,
        encoder_lora_target_modules: list[str] | None = None,
        audio_token: str = "<audio>",
        user_prompt: str = "Transcribe: ",
        system_prompt: str | None = None,
        max_audio_seconds: float = 30.0,
        encoder_pad_to_window: bool = False,
        audio_token_dropout: float = 0.0,
        ctc_weight: float = 0.0,
        **kwargs: Any,
    ) -> None:
        # Not `encoder`/`decoder`: transformers reads those names as nested sub-configs.
        self.audio_encoder = audio_encoder
        self.text_decoder = text_decoder
        self.projector_type = projector_type
        self.projector_pool_stride = projector_pool_stride
        self.projector_hidden_dim = projector_hidden_dim
        self.projector_dropout = projector_dropout
        self.projector_num_experts = projector_num_experts
        self.projector_top_k = projector_top_k
        self.projector_num_queries = projector_num_queries
        self.projector_window = projector_window
        self.projector_num_layers = projector_num_layers
        self.projector_num_heads = projector_num_heads
        # MoE router losses (moe projector): Switch load balancing and ST-MoE router z-loss.
        self.projector_balance_loss_coef = projector_balance_loss_coef
        self.projector_z_loss_coef = projector_z_loss_coef
        # Filled in when the model is first built, so a saved config is self-describing.
        self.encoder_dim = encoder_dim
        self.decoder_dim = decoder_dim
        self.embedding_scale = embedding_scale
        self.lora_rank = lora_rank
        self.lora_alpha = lora_alpha
        self.lora_dropout = lora_dropout
        self.lora_target_modules = lora_target_modules or ["q_proj", "v_proj"]
        self.encoder_lora_rank = encoder_lora_rank
        self.encoder_lora_target_modules = encoder_lora_target_modules or ["q_proj", "v_proj"]
        self.audio_token = audio_token
        self.user_prompt = user_prompt
        self.system_prompt = system_prompt
        # The longest window the encoder takes at once (Whisper: 30 s); longer audio is chunked.
        self.max_audio_seconds = max_audio_seconds
        # Whisper only: encode each clip inside the encoder's whole window (see encoders.py).
        self.encoder_pad_to_window = encoder_pad_to_window
        self.audio_token_dropout = audio_token_dropout
        # Weight of the CTC loss that grounds projected audio frames in the LLM's token embeddings
        # (training only; 0 builds no CTC head).
        self.ctc_weight = ctc_weight
        super().__init__(**kwargs)
