// Greedy decoding with llama.cpp, printing what cairn's agreement test
// compares: the prompt's token ids, then for each step the chosen token and
// the five largest logits (id, value). Built and run by
// tests/llama-cpp/make-fixture (not part of CI: llama.cpp takes ~20 minutes
// to build on 2 cores).
//
// usage: greedy MODEL.gguf N_TOKENS PROMPT
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "llama.h"

static void quiet(ggml_log_level, const char *, void *) {}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s MODEL.gguf N_TOKENS PROMPT\n", argv[0]);
        return 2;
    }
    const int n_gen = atoi(argv[2]);
    const std::string prompt = argv[3];
    llama_log_set(quiet, nullptr);
    llama_backend_init();
    llama_model_params mp = llama_model_default_params();
    // No weight repacking: on CPUs with AMX, ggml's AMX kernels fault
    // unless the process asked the kernel for AMX state, which ggml does
    // not do. The plain CPU path is llama.cpp's reference arithmetic.
    mp.use_extra_bufts = false;
    llama_model *model = llama_model_load_from_file(argv[1], mp);
    if (!model) {
        fprintf(stderr, "cannot load %s\n", argv[1]);
        return 1;
    }
    const llama_vocab *vocab = llama_model_get_vocab(model);
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 2048;
    cp.n_batch = 2048;
    cp.n_threads = 2;
    cp.n_threads_batch = 2;
    // Keys and values in F32, as cairn keeps them (llama.cpp's default F16
    // cache shifts logits by a few tenths and flips near-ties), and no
    // flash attention (its CPU path computes in F16).
    cp.type_k = GGML_TYPE_F32;
    cp.type_v = GGML_TYPE_F32;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    llama_context *ctx = llama_init_from_model(model, cp);
    // add_special = false: the chat template already holds every special
    // token; parse_special = true: "<|im_start|>" is one token.
    int n = -llama_tokenize(vocab, prompt.c_str(), prompt.size(), nullptr, 0, false, true);
    std::vector<llama_token> toks(n);
    llama_tokenize(vocab, prompt.c_str(), prompt.size(), toks.data(), n, false, true);
    printf("{\"prompt_ids\": [");
    for (int i = 0; i < n; i++) printf("%s%d", i ? ", " : "", toks[i]);
    printf("], \"steps\": [");
    const int n_vocab = llama_vocab_n_tokens(vocab);
    llama_batch batch = llama_batch_get_one(toks.data(), n);
    llama_token tok = 0;
    for (int step = 0; step < n_gen; step++) {
        if (llama_decode(ctx, batch) != 0) {
            fprintf(stderr, "decode failed\n");
            return 1;
        }
        const float *logits = llama_get_logits_ith(ctx, -1);
        std::vector<int> ids(n_vocab);
        for (int i = 0; i < n_vocab; i++) ids[i] = i;
        std::partial_sort(ids.begin(), ids.begin() + 5, ids.end(),
                          [&](int a, int b) { return logits[a] > logits[b]; });
        tok = ids[0];
        printf("%s{\"id\": %d, \"top\": [", step ? ", " : "", tok);
        for (int i = 0; i < 5; i++) printf("%s[%d, %.5f]", i ? ", " : "", ids[i], logits[ids[i]]);
        printf("]}");
        if (llama_vocab_is_eog(vocab, tok)) break;
        batch = llama_batch_get_one(&tok, 1);
    }
    printf("]}\n");
    llama_free(ctx);
    llama_model_free(model);
    return 0;
}
