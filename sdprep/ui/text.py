"""Every user-facing string of the web UI, in English and Russian, in one table.

Static labels go to the browser through `gr.I18n` (the browser's language picks the translation on the first
paint); the visible language switch re-renders the same keys with `gr.update`. Text the server composes
(derived values, build results, the library, ...) is formatted with `t(key, lang, **values)`.

Messages from the core modules (validation problems, build reasons) are English: they come from code shared with
the CLI and are shown as they are.
"""

from __future__ import annotations

from typing import Literal

import gradio as gr
from gradio.i18n import I18nData

from sdprep.params import MAX_CONTROLNETS

Lang = Literal["en", "ru"]
LANGUAGES: tuple[Lang, ...] = ("en", "ru")
LANGUAGE_CHOICES: list[tuple[str, str]] = [("English", "en"), ("Русский", "ru")]
KEY_PREFIX = "sdprep_"  # keeps our keys apart from Gradio's own translation keys in the browser

TEXT: dict[str, tuple[str, str]] = {
    # --- page ----------------------------------------------------------------------------------------------
    "title": ("## StreamDiffusion model prep", "## Подготовка моделей StreamDiffusion"),
    "subtitle": (
        "Choose what TensorRT bakes into the engines, build them, and get `config.yaml` for "
        "`create_wrapper_from_config()`. Runtime values (prompt, guidance, seed, ...) are not here: change them "
        "later with `update_stream_params()`.",
        "Выберите, что TensorRT запекает в движки, соберите их и получите `config.yaml` для "
        "`create_wrapper_from_config()`. Значения времени выполнения (промпт, guidance, seed, ...) здесь не "
        "задаются: их меняют потом через `update_stream_params()`.",
    ),
    "language": ("Language", "Язык"),
    "tab_prepare": ("Prepare", "Подготовка"),
    "tab_library": ("Engines library", "Библиотека движков"),
    "tab_environment": ("Environment", "Окружение"),
    # --- sections ------------------------------------------------------------------------------------------
    "sec_checkpoint": ("### Checkpoint", "### Модель"),
    "sec_sampling": ("### Sampling", "### Сэмплирование"),
    "sec_resolution": ("### Resolution", "### Разрешение"),
    "sec_lora": ("### LoRA", "### LoRA"),
    "sec_controlnet": ("### ControlNet", "### ControlNet"),
    "sec_ipadapter": ("### IP-Adapter", "### IP-Adapter"),
    "sec_output": ("### Engine output", "### Куда собирать"),
    "sec_actions": ("### Build", "### Сборка"),
    "sec_preview": ("### Preview", "### Предпросмотр"),
    "advanced": ("Advanced", "Дополнительно"),
    # --- fields --------------------------------------------------------------------------------------------
    "f_model": ("Model (model_id)", "Модель (model_id)"),
    "i_model": (
        "A Hugging Face id, a diffusers folder or a .safetensors / .ckpt file.",
        "Id на Hugging Face, папка diffusers или файл .safetensors / .ckpt.",
    ),
    "f_model_family": ("Model family (model_family)", "Семейство модели (model_family)"),
    "i_model_family": (
        "auto detects it from the model; set it for a checkpoint with an unusual name.",
        "auto определяет его по модели; задайте вручную для чекпойнта с необычным именем.",
    ),
    "f_denoise_steps": ("Denoise steps (denoise_steps)", "Шаги шумоподавления (denoise_steps)"),
    "i_denoise_steps": (
        "Each step is one UNet pass per frame; the t_index_list below follows from it.",
        "Каждый шаг — один проход UNet на кадр; t_index_list ниже следует из этого числа.",
    ),
    "f_consistency_lora": ("Consistency LoRA (consistency_lora)", "Consistency LoRA (consistency_lora)"),
    "i_consistency_lora": (
        "Adds the LCM or TCD LoRA for the model's family; none for turbo models.",
        "Добавляет LCM- или TCD-LoRA для семейства модели; none для turbo-моделей.",
    ),
    "f_scheduler": ("Pipeline scheduler (scheduler)", "Планировщик (scheduler)"),
    "f_cfg_type": ("CFG type (cfg_type)", "Тип CFG (cfg_type)"),
    "i_cfg_type": (
        "self and none add no UNet work; full doubles the UNet batch, initialize adds one.",
        "self и none не добавляют работы UNet; full удваивает батч UNet, initialize добавляет один.",
    ),
    "f_frame_buffer_size": ("Frame buffer size (frame_buffer_size)", "Буфер кадров (frame_buffer_size)"),
    "f_width": ("Width (width)", "Ширина (width)"),
    "f_height": ("Height (height)", "Высота (height)"),
    "f_use_tiny_vae": ("Tiny VAE (use_tiny_vae)", "Маленький VAE (use_tiny_vae)"),
    "f_use_cached_attn": ("Cached attention (use_cached_attn)", "Кэш внимания (use_cached_attn)"),
    "f_use_safety_checker": ("Safety checker (use_safety_checker)", "Фильтр NSFW (use_safety_checker)"),
    "f_cache_maxframes": ("Cache max frames (cache_maxframes)", "Кадров в кэше (cache_maxframes)"),
    "f_lora_json": ("Your LoRAs as JSON (lora_json)", "Ваши LoRA в JSON (lora_json)"),
    "i_lora_json": (
        '{"hf_id_or_path": scale, ...}; the consistency LoRA is added by itself.',
        '{"hf_id_или_путь": вес, ...}; consistency LoRA добавляется сама.',
    ),
    "f_use_controlnet": ("Use ControlNet (use_controlnet)", "Использовать ControlNet (use_controlnet)"),
    "f_cn_count": ("Number of ControlNets (cn_count)", "Число ControlNet (cn_count)"),
    "f_use_ipadapter": ("Use IP-Adapter (use_ipadapter)", "Использовать IP-Adapter (use_ipadapter)"),
    "f_ipadapter_model_path": ("Model path (ipadapter_model_path)", "Путь к модели (ipadapter_model_path)"),
    "f_ipadapter_encoder_path": ("Encoder path (ipadapter_encoder_path)", "Путь к энкодеру (ipadapter_encoder_path)"),
    "f_ipadapter_tokens": ("Tokens (ipadapter_tokens)", "Токены (ipadapter_tokens)"),
    "f_ipadapter_type": ("Type (ipadapter_type)", "Тип (ipadapter_type)"),
    "f_ipadapter_scale": ("Scale (ipadapter_scale), set at runtime", "Вес (ipadapter_scale), задаётся при работе"),
    "f_engines_dir": ("Engines folder (engines_dir)", "Папка движков (engines_dir)"),
    "i_engines_dir": (
        "Each model gets <folder>/<model_slug>/ with its engines and config.yaml.",
        "Каждая модель получает <папка>/<model_slug>/ со своими движками и config.yaml.",
    ),
    # --- actions -------------------------------------------------------------------------------------------
    "btn_build": ("Build", "Собрать"),
    "btn_cancel": ("Cancel", "Отменить"),
    "btn_save": ("Save config only", "Только сохранить конфиг"),
    "btn_load": ("Load config", "Загрузить конфиг"),
    "f_force": ("Force rebuild (force)", "Пересобрать заново (force)"),
    "f_check": (
        "Check after the build: load the engines and time frames (check)",
        "Проверить после сборки: загрузить движки и замерить кадры (check)",
    ),
    "o_check_image": ("Check output frame", "Кадр проверки"),
    "chk_heading": ("Load-and-run check", "Проверка загрузкой и прогоном"),
    "chk_passed": ("✔ Check passed", "✔ Проверка пройдена"),
    "chk_failed": ("✘ Check failed", "✘ Проверка не пройдена"),
    "chk_cancelled": ("■ Check cancelled", "■ Проверка отменена"),
    "chk_refused": ("⊘ Check not run", "⊘ Проверка не запущена"),
    "f_load_path": ("Config to load (path to a config.yaml)", "Конфиг для загрузки (путь к config.yaml)"),
    "f_load_upload": ("…or upload a config.yaml", "…или загрузите config.yaml"),
    "o_actions": ("Messages", "Сообщения"),
    "save_ok": ("Saved `{path}`.", "Сохранено: `{path}`."),
    "save_errors": ("Nothing was written: fix the errors first.", "Ничего не записано: сначала исправьте ошибки."),
    "save_failed": ("Could not write `{path}`: {error}", "Не удалось записать `{path}`: {error}"),
    "load_ok": ("Loaded `{path}` into the form.", "Загружено в форму: `{path}`."),
    "load_failed": ("Could not load the config: {error}", "Не удалось загрузить конфиг: {error}"),
    "load_no_path": (
        "Give the path of a config.yaml or upload one.",
        "Укажите путь к config.yaml или загрузите файл.",
    ),
    "load_note": ("Note: {note}", "Примечание: {note}"),
    "load_clamped": (
        "{field} {value} is outside the form's range; the form shows {shown}.",
        "{field} {value} вне диапазона формы; в форме стоит {shown}.",
    ),
    "load_not_a_choice": (
        "{field} {value} is not one of the form's choices; the form keeps its current value.",
        "{field} {value} нет среди вариантов формы; в форме осталось прежнее значение.",
    ),
    "load_extra_controlnets": (
        "The config has {count} ControlNets; the form keeps the first {max}.",
        "В конфиге {count} ControlNet; форма оставляет первые {max}.",
    ),
    # --- preview -------------------------------------------------------------------------------------------
    "o_summary": ("Checks", "Проверки"),
    "o_derived": ("Derived values", "Производные значения"),
    "o_yaml": ("config.yaml that will be written", "config.yaml, который будет записан"),
    "sum_ok": ("✔ No problems: ready to build.", "✔ Проблем нет: можно собирать."),
    "sum_warnings": (
        "⚠ {warnings} warning(s); the build is allowed.",
        "⚠ Предупреждений: {warnings}; сборка разрешена.",
    ),
    "sum_errors": (
        "⊘ {errors} error(s), {warnings} warning(s): Build is disabled until the errors are fixed.",
        "⊘ Ошибок: {errors}, предупреждений: {warnings}. Сборка недоступна, пока есть ошибки.",
    ),
    "sev_error": ("error", "ошибка"),
    "sev_warning": ("warning", "предупреждение"),
    "d_t_index": ("t_index_list", "t_index_list"),
    "d_unet_batch": ("UNet batch (trt_unet_batch_size)", "Батч UNet (trt_unet_batch_size)"),
    "d_scheduler": ("Scheduler", "Планировщик"),
    "d_family": ("Model family", "Семейство модели"),
    "d_lora_dict": ("Final lora_dict", "Итоговый lora_dict"),
    "d_engine_dir": ("Engine folder (engine_dir)", "Папка движков (engine_dir)"),
    "d_config_path": ("Config path", "Путь конфига"),
    "d_variant": ("Variant", "Вариант"),
    "d_value": ("Value", "Значение"),
    "d_name": ("Name", "Имя"),
    "d_unavailable": ("— (fix the errors)", "— (исправьте ошибки)"),
    "hint_family": ("Detected family: **{family}** ({source}).", "Определённое семейство: **{family}** ({source})."),
    "hint_family_set": (
        "Family set by hand: **{family}** (detected: {detected}).",
        "Семейство задано вручную: **{family}** (определено: {detected}).",
    ),
    "hint_sampling": (
        "t_index_list = `{t_index}` · UNet batch **{batch}** · scheduler **{scheduler}**",
        "t_index_list = `{t_index}` · батч UNet **{batch}** · планировщик **{scheduler}**",
    ),
    "hint_resolution": ("{width}×{height} px, variant `{variant}`", "{width}×{height} пикс., вариант `{variant}`"),
    "hint_consistency": (
        "Consistency LoRA added: `{lora}` (scale {scale}).",
        "Добавляется consistency LoRA: `{lora}` (вес {scale}).",
    ),
    "hint_no_consistency": ("No consistency LoRA is added.", "Consistency LoRA не добавляется."),
    "hint_final_loras": ("Final lora_dict: `{loras}`", "Итоговый lora_dict: `{loras}`"),
    "hint_controlnet_off": ("ControlNet is off.", "ControlNet выключен."),
    "hint_controlnet": (
        "{count} ControlNet(s) baked; each gets its own engine.",
        "ControlNet в движке: {count}; у каждого свой движок.",
    ),
    "hint_ipadapter_off": ("IP-Adapter is off.", "IP-Adapter выключен."),
    "hint_ipadapter": (
        "IP-Adapter {type}, {tokens} tokens, baked into the UNet.",
        "IP-Adapter {type}, {tokens} токенов, запекается в UNet.",
    ),
    "hint_output": ("Writes `{config}`", "Будет записан `{config}`"),
    # --- ControlNet slots (one entry per slot so every label names its own field) ---------------------------
    "f_cn_scale": (
        "Conditioning scale (conditioning_scale), set at runtime",
        "Сила (conditioning_scale), задаётся при работе",
    ),
    # --- build ---------------------------------------------------------------------------------------------
    "o_progress": ("Progress", "Ход сборки"),
    "o_log": ("Build log", "Журнал сборки"),
    "o_result": ("Result", "Результат"),
    "prog_idle": ("No build yet.", "Сборок пока не было."),
    "prog_queued": (
        "Waiting: {ahead} build(s) ahead in this server's queue (position {position}). Elapsed {elapsed} s.",
        "Ожидание: впереди сборок в очереди сервера: {ahead} (позиция {position}). Прошло {elapsed} с.",
    ),
    "prog_starting": ("Starting… elapsed {elapsed} s", "Запуск… прошло {elapsed} с"),
    "prog_running": (
        "⚙ **{stage}** (since {since} s) · elapsed **{elapsed} s**",
        "⚙ **{stage}** (с {since} с) · прошло **{elapsed} с**",
    ),
    "prog_waiting_gpu": ("Waiting: {message}", "Ожидание: {message}"),
    "prog_finished": ("{outcome} · {elapsed} s", "{outcome} · {elapsed} с"),
    "prog_what": ("`{model}` → `{folder}`", "`{model}` → `{folder}`"),
    "prog_stages": ("Stages: {stages}", "Этапы: {stages}"),
    "log_earlier": (
        "… {count} earlier line(s) are in the log file …",
        "… ещё {count} строк(и) выше — в файле журнала …",
    ),
    "out_built": ("✔ Built", "✔ Собрано"),
    "out_up_to_date": ("✔ Up to date: nothing to build", "✔ Уже собрано: собирать нечего"),
    "out_failed": ("✘ Build failed", "✘ Сборка не удалась"),
    "out_cancelled": ("■ Cancelled", "■ Отменено"),
    "out_refused": ("⊘ Not started", "⊘ Не запущено"),
    "res_config": ("Config: `{path}`", "Конфиг: `{path}`"),
    "res_variant": ("Variant: `{variant}` · total {duration} s", "Вариант: `{variant}` · всего {duration} с"),
    "res_engines": ("Engine files", "Файлы движков"),
    "res_reused": ("reused", "взят готовый"),
    "res_built": ("built", "собран"),
    "res_stages": ("Stage durations", "Длительность этапов"),
    "res_stage": ("Stage", "Этап"),
    "res_seconds": ("Seconds", "Секунды"),
    "res_log_tail": ("Last lines of the log", "Последние строки журнала"),
    "res_log_path": ("Full log: `{path}`", "Полный журнал: `{path}`"),
    "res_problems": ("Problems", "Проблемы"),
    "cancel_none": ("No build of this page is running.", "Сборка этой страницы не идёт."),
    "cancel_slow": (
        "Cancel requested; the build is still stopping.",
        "Отмена запрошена; сборка ещё останавливается.",
    ),
    "build_invalid": (
        "The form has errors; nothing was started. See the problems next to the fields.",
        "В форме есть ошибки; ничего не запущено. Смотрите проблемы рядом с полями.",
    ),
    # --- environment ---------------------------------------------------------------------------------------
    "btn_env_check": ("Check environment", "Проверить окружение"),
    "btn_env_refresh": ("Probe again", "Проверить заново"),
    "o_environment": ("Build environment", "Окружение сборки"),
    "env_intro": (
        "What the build Python (the one that imports StreamDiffusion) can do. Checking starts it once "
        "(a few seconds); the answer is cached until torch, TensorRT or StreamDiffusion change.",
        "Что может Python сборки (тот, что импортирует StreamDiffusion). Проверка запускает его один раз "
        "(несколько секунд); ответ кэшируется, пока не изменятся torch, TensorRT или StreamDiffusion.",
    ),
    "env_not_checked": (
        "Not checked yet: click **Check environment**.",
        "Ещё не проверено: нажмите **Проверить окружение**.",
    ),
    "env_error": ("⊘ The environment check failed: {error}", "⊘ Проверка окружения не удалась: {error}"),
    "env_checked_at": ("Checked {when}.", "Проверено {when}."),
    "env_ready": ("✔ Everything needed to build is there.", "✔ Всё нужное для сборки есть."),
    "env_missing": ("⊘ Missing to build", "⊘ Для сборки не хватает"),
    "env_item": ("Item", "Что"),
    "env_value": ("Value", "Значение"),
    "env_gpu": ("GPU", "Видеокарта"),
    "env_vram": ("VRAM", "Видеопамять"),
    "env_cc": ("Compute capability", "Compute capability"),
    "env_cuda": ("CUDA (torch)", "CUDA (torch)"),
    "env_torch": ("PyTorch", "PyTorch"),
    "env_tensorrt": ("TensorRT", "TensorRT"),
    "env_python": ("Build Python", "Python сборки"),
    "env_sd": ("StreamDiffusion", "StreamDiffusion"),
    "env_sd_location": ("StreamDiffusion location", "Где StreamDiffusion"),
    "env_none": ("not found", "не найден"),
    "env_features": ("What this StreamDiffusion can build", "Что умеет этот StreamDiffusion"),
    "env_feature": ("Feature", "Возможность"),
    "env_supported": ("Supported", "Есть"),
    "yes": ("yes", "да"),
    "no": ("no", "нет"),
    "unknown": ("unknown", "неизвестно"),
    "feat_compile_engines_only": (
        "Build engines without loading for inference (compile_engines_only)",
        "Сборка движков без загрузки для работы (compile_engines_only)",
    ),
    "feat_scheduler": ("Scheduler choice, TCD (scheduler)", "Выбор планировщика, TCD (scheduler)"),
    "feat_sampler": ("Sampler choice (sampler)", "Выбор сэмплера (sampler)"),
    "feat_cached_attention": ("Cached attention (use_cached_attn)", "Кэш внимания (use_cached_attn)"),
    "feat_controlnet": ("ControlNet (use_controlnet)", "ControlNet (use_controlnet)"),
    "feat_ipadapter": ("IP-Adapter (use_ipadapter)", "IP-Adapter (use_ipadapter)"),
    "feat_safety_checker_engine": ("TensorRT safety checker engine", "TensorRT-движок фильтра NSFW"),
    "feat_min_max_batch": ("Min/max batch in the wrapper", "Мин./макс. батч в обёртке"),
    "feat_config_batch_bounds": (
        "Batch bounds from the config (UNet batch above 4)",
        "Границы батча из конфига (батч UNet больше 4)",
    ),
    "feat_config_ipadapter_tokens": (
        "IP-Adapter tokens from the config (16-token Plus adapters)",
        "Токены IP-Adapter из конфига (Plus-адаптеры на 16 токенов)",
    ),
    # --- library -------------------------------------------------------------------------------------------
    "lib_intro": (
        "Prepared models under the engines folder of the form. Load one back into the form, or delete it.",
        "Подготовленные модели в папке движков из формы. Можно загрузить в форму или удалить.",
    ),
    "btn_lib_refresh": ("Refresh", "Обновить"),
    "btn_lib_load": ("Load into form", "Загрузить в форму"),
    "btn_lib_delete": ("Delete", "Удалить"),
    "f_lib_model": ("Prepared model", "Подготовленная модель"),
    "f_lib_variant": ("Variant", "Вариант"),
    "f_lib_sure": ("I am sure: delete this model's folder", "Я уверен(а): удалить папку этой модели"),
    "o_library": ("Prepared models", "Подготовленные модели"),
    "o_lib_message": ("Library messages", "Сообщения библиотеки"),
    "lib_empty": ("No prepared models in `{folder}`.", "В `{folder}` нет подготовленных моделей."),
    "lib_folder": ("Engines folder: `{folder}`", "Папка движков: `{folder}`"),
    "lib_model": ("Model", "Модель"),
    "lib_config": ("config.yaml", "config.yaml"),
    "lib_latest": ("latest", "последний"),
    "lib_no_build": ("no recorded build", "сборок не записано"),
    "lib_status": ("Status", "Состояние"),
    "lib_engines": ("Engines", "Движки"),
    "lib_built": ("Built", "Собран"),
    "lib_on": ("GPU / TensorRT", "Видеокарта / TensorRT"),
    "lib_loose": (
        "{count} engine file(s) here were not recorded by this app.",
        "Файлов движков, не записанных этим приложением: {count}.",
    ),
    "lib_current_config": ("current config.yaml", "текущий config.yaml"),
    "lib_choose": ("Choose a prepared model first.", "Сначала выберите подготовленную модель."),
    "lib_sure_first": (
        "Tick “I am sure” first; nothing was deleted.",
        "Сначала отметьте «Я уверен(а)»; ничего не удалено.",
    ),
    "lib_deleted": ("Deleted `{path}`.", "Удалено: `{path}`."),
    "lib_refused": ("Not deleted: {error}", "Не удалено: {error}"),
    "lib_no_config": ("`{slug}` has no config to load.", "У `{slug}` нет конфига для загрузки."),
    "status_ready": ("ready", "готов"),
    "status_changed": ("engines changed since the build", "движки изменены после сборки"),
    "status_stale": ("stale (engines replaced by a later build)", "устарел (движки заменены более поздней сборкой)"),
    "status_missing": ("engines missing", "движков не хватает"),
}

SLOT_TEXT: dict[str, tuple[str, str]] = {
    "model_id": ("Model id", "Модель"),
    "preprocessor": ("Preprocessor", "Препроцессор"),
    "conditioning_channels": ("Conditioning channels, empty = default", "Каналы условия, пусто = по умолчанию"),
    "enabled": ("Enabled", "Включён"),
}
for _index in range(MAX_CONTROLNETS):
    TEXT[f"cn{_index}_title"] = (f"**ControlNet {_index + 1}**", f"**ControlNet {_index + 1}**")
    for _name, (_en, _ru) in SLOT_TEXT.items():
        TEXT[f"cn{_index}_{_name}"] = (
            f"{_en} (controlnets[{_index}].{_name})",
            f"{_ru} (controlnets[{_index}].{_name})",
        )


def t(key: str, lang: str = "en", **values: object) -> str:
    """The text of `key` in `lang` (English for an unknown language), formatted with `values`."""
    english, russian = TEXT[key]
    text = russian if lang == "ru" else english
    return text.format(**values) if values else text


def label(key: str) -> I18nData:
    """A translatable label: the browser shows it in its own language (see `i18n()`)."""
    if key not in TEXT:  # fail at start-up, not in the browser
        raise KeyError(f"{key!r} is not in the text table")
    return I18nData(KEY_PREFIX + key)


def i18n() -> gr.I18n:
    """The whole table for the browser, passed to `launch(i18n=...)`."""
    return gr.I18n(
        **{
            lang: {KEY_PREFIX + key: (pair[1] if lang == "ru" else pair[0]) for key, pair in TEXT.items()}
            for lang in LANGUAGES
        }
    )


def lang_of(locale: str | None) -> Lang:
    """The table language for a browser locale like "ru-RU" (English for anything else)."""
    return "ru" if (locale or "").strip().lower().startswith("ru") else "en"
