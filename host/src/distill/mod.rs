//! Key distillation, one module per stage.
