/* Network descriptions (src/models/netdesc_*.c): every layer type and field, the defaults and the canonical
 * JSON, every class of error (syntax with line and column, unknown type and field, bad values, shapes that
 * do not fit, groups, overflow), the shipped models (names, shapes, ResNet-20's 272,186 parameters, the
 * reference FLOPs), and the gradients of a description with a residual, batch-norm and pools against
 * central finite differences. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dptrain/netdesc.h"
#include "gradcheck_assert.h"
#include "timeout.h"

static const dp_model_shape MNIST = {1, 28, 28, 10};

static dp_model *build_ok(const char *json, const dp_model_shape *in)
{
    dp_model *m = NULL;
    dp_status rc = dp_netdesc_build(json, "t.json", in, &m);
    cr_assert_eq(rc, DP_OK, "build failed: %s", dp_errmsg());
    cr_assert_not_null(m);
    return m;
}

/* Builds `json`, expects failure with status `want` and every one of the NULL-terminated substrings. */
static void build_fails(const char *json, const dp_model_shape *in, dp_status want, const char *const *parts)
{
    dp_model *m = NULL;
    dp_status rc = dp_netdesc_build(json, "t.json", in, &m);
    cr_assert_eq(rc, want, "status %d, want %d (%s) for %s", rc, want, dp_errmsg(), json);
    cr_assert_null(m);
    const char *msg = dp_errmsg();
    cr_assert(!strncmp(msg, "t.json: ", 8), "message does not name the source: %s", msg);
    for (int i = 0; parts[i]; i++) cr_assert(strstr(msg, parts[i]), "'%s' not in: %s", parts[i], msg);
}

#define FAILS(json, want, ...) build_fails((json), &MNIST, (want), (const char *const[]){__VA_ARGS__, NULL})
#define BAD_FORMAT(json, ...) FAILS(json, DP_ERR_FORMAT, __VA_ARGS__)
#define BAD_SHAPE(json, ...) FAILS(json, DP_ERR_SHAPE, __VA_ARGS__)

static const dp_param *param(const dp_model *m, const char *name)
{
    for (int i = 0; i < m->params.count; i++)
        if (!strcmp(m->params.items[i]->name, name)) return m->params.items[i];
    return NULL;
}

/* ------------------------------------------------------------ the parser */

/* Every layer type with every field it takes, given explicitly. */
static const char every_field[] =
    "{\"name\": \"all\", \"layers\": ["
    "{\"type\": \"conv\", \"name\": \"c\", \"out\": 8, \"kernel\": 3, \"stride\": 1, \"padding\": 2, \"dilation\": 2,"
    " \"groups\": 1, \"bias\": false},"
    "{\"type\": \"batchnorm\", \"name\": \"bn\", \"eps\": 0.001, \"momentum\": 0.25, \"affine\": true},"
    "{\"type\": \"relu\", \"name\": \"r\"}, {\"type\": \"gelu\"}, {\"type\": \"tanh\"}, {\"type\": \"sigmoid\"},"
    "{\"type\": \"conv\", \"name\": \"dw\", \"out\": 8, \"kernel\": 3, \"padding\": 1, \"groups\": 8},"
    "{\"type\": \"maxpool\", \"kernel\": 3, \"stride\": 2, \"padding\": 1},"
    "{\"type\": \"avgpool\", \"kernel\": 2, \"stride\": 1, \"padding\": 0},"
    "{\"type\": \"residual\", \"name\": \"res\", \"layers\": ["
    "  {\"type\": \"conv\", \"out\": 16, \"kernel\": 3, \"stride\": 2, \"padding\": 1, \"bias\": false},"
    "  {\"type\": \"batchnorm\", \"affine\": false}]},"
    "{\"type\": \"global_avgpool\"}, {\"type\": \"dropout\", \"p\": 0.5},"
    "{\"type\": \"batchnorm\", \"name\": \"bn1d\"},"
    "{\"type\": \"linear\", \"name\": \"fc\", \"out\": 32, \"bias\": false}, {\"type\": \"flatten\"},"
    "{\"type\": \"linear\", \"name\": \"head\", \"out\": \"classes\", \"bias\": true}]}";

Test(netdesc_parse, every_layer_and_field)
{
    dp_model *m = build_ok(every_field, &MNIST);
    cr_assert_str_eq(m->name, "all");
    /* 28 -> conv (pad 2, dilation 2) 28 -> maxpool 3/2/1 14 -> avgpool 2/1 13 -> residual stride 2: 7 */
    const dp_netdesc_row *rows;
    int n = dp_netdesc_rows(m, &rows);
    cr_assert_eq(n, 19); /* 16 layers, 2 in the body, 1 shortcut */
    cr_assert_eq(rows[0].shape[0], 8);
    cr_assert_eq(rows[0].shape[1], 28);
    cr_assert_eq(rows[7].shape[1], 14, "maxpool: %ld", rows[7].shape[1]);
    cr_assert_eq(rows[8].shape[1], 13, "avgpool: %ld", rows[8].shape[1]);
    cr_assert_str_eq(rows[9].type, "residual");
    cr_assert_eq(rows[9].shape[0], 16);
    cr_assert_eq(rows[9].shape[1], 7);
    cr_assert_str_eq(rows[12].type, "shortcut");
    cr_assert_str_eq(rows[12].name, "res.shortcut");
    cr_assert_eq(rows[13].ndim, 1);
    cr_assert_eq(rows[13].shape[0], 16);
    /* fields reach the modules */
    cr_assert_null(param(m, "c.bias"), "bias false");
    const dp_param *dw = param(m, "dw.weight");
    cr_assert_not_null(dw);
    cr_assert_eq(dw->t.shape[1], 1, "groups 8: in/groups = 1");
    cr_assert_not_null(param(m, "res.body.0.weight"));
    cr_assert_null(param(m, "res.body.1.weight"), "affine false");
    cr_assert_not_null(param(m, "res.body.1.running_mean"));
    cr_assert_not_null(param(m, "res.shortcut.0.weight"));
    cr_assert_not_null(param(m, "res.shortcut.1.running_var"));
    cr_assert_null(param(m, "fc.bias"));
    cr_assert_not_null(param(m, "head.bias"));
    cr_assert_eq(param(m, "head.weight")->t.shape[0], 10);
    /* the canonical JSON keeps every value */
    const char *d = m->desc;
    cr_assert(strstr(d, "\"type\":\"conv\",\"name\":\"c\",\"out\":8,\"kernel\":3,\"stride\":1,\"padding\":2,"
                        "\"dilation\":2,\"groups\":1,\"bias\":false"), "%s", d);
    cr_assert(strstr(d, "\"eps\":0.001,\"momentum\":0.25,\"affine\":true"), "%s", d);
    cr_assert(strstr(d, "\"type\":\"dropout\",\"name\":\"11\",\"p\":0.5"), "%s", d);
    cr_assert(strstr(d, "\"out\":\"classes\""), "%s", d);
    cr_assert(!strchr(d, '\n') && !strchr(d, ' '), "compact: %s", d);
    /* rebuilt from its canonical form: the same text and the same layout */
    dp_model *m2 = build_ok(d, &MNIST);
    cr_assert_str_eq(m2->desc, d);
    cr_assert_eq(dp_params_layout_hash(&m2->params), dp_params_layout_hash(&m->params));
    dp_model_free(m2);
    dp_model_free(m);
}

Test(netdesc_parse, defaults)
{
    dp_model *m = build_ok("{\"layers\": [{\"type\": \"conv\", \"out\": 4}, {\"type\": \"batchnorm\"},"
                           "{\"type\": \"maxpool\", \"kernel\": 2}, {\"type\": \"avgpool\", \"kernel\": 3},"
                           "{\"type\": \"flatten\"}, {\"type\": \"linear\", \"out\": \"classes\"}]}",
                           &MNIST);
    cr_assert_str_eq(m->desc, "{\"name\":\"net\",\"layers\":["
                              "{\"type\":\"conv\",\"name\":\"0\",\"out\":4,\"kernel\":3,\"stride\":1,\"padding\":0,"
                              "\"dilation\":1,\"groups\":1,\"bias\":true},"
                              "{\"type\":\"batchnorm\",\"name\":\"1\",\"eps\":1e-05,\"momentum\":0.1,\"affine\":true},"
                              "{\"type\":\"maxpool\",\"name\":\"2\",\"kernel\":2,\"stride\":2,\"padding\":0},"
                              "{\"type\":\"avgpool\",\"name\":\"3\",\"kernel\":3,\"stride\":3,\"padding\":0},"
                              "{\"type\":\"flatten\",\"name\":\"4\"},"
                              "{\"type\":\"linear\",\"name\":\"5\",\"out\":\"classes\",\"bias\":true}]}");
    /* 28 -> conv 3x3 26 -> pool 2: 13 -> pool 3: 4 */
    cr_assert_eq(param(m, "5.weight")->t.shape[1], 4 * 4 * 4);
    cr_assert_not_null(param(m, "0.bias"));
    cr_assert_not_null(param(m, "1.weight"));
    dp_model_free(m);
}

Test(netdesc_parse, syntax_error_line_and_column)
{
    BAD_FORMAT("{\"layers\": [\n  {\"type\": \"relu\"},\n  {\"type\" \"flatten\"}\n]}", "JSON syntax error",
               "line 3, column 11");
    BAD_FORMAT("", "line 1, column 1");
    BAD_FORMAT("{\"layers\": []} x", "line 1, column 16"); /* trailing text */
    BAD_FORMAT("{\"layers\": [{\"type\": \"relu\"}]", "line 1, column 30"); /* unterminated */
}

Test(netdesc_parse, unknown_type_and_field)
{
    BAD_FORMAT("{\"layers\": [{\"type\": \"relu\"}, {\"type\": \"relux\"}]}", "layers[1]", "unknown type 'relux'",
               "known: conv batchnorm");
    BAD_FORMAT("{\"layers\": [{\"type\": \"conv\", \"out\": 4, \"kernal\": 5}]}", "layers[0] (conv)",
               "unknown field 'kernal'", "conv takes: type name out kernel");
    /* a field of another type is unknown here */
    BAD_FORMAT("{\"layers\": [{\"type\": \"relu\", \"out\": 4}]}", "layers[0] (relu)", "unknown field 'out'");
    BAD_FORMAT("{\"layers\": [{\"type\": \"residual\", \"layers\": [{\"type\": \"conv\", \"out\": 1, \"pad\": 1}]}]}",
               "layers[0] (residual) layers[0] (conv): unknown field 'pad'");
    BAD_FORMAT("{\"layers\": [{\"type\": \"relu\"}], \"input\": [1, 28, 28]}", "unknown field 'input'");
    BAD_FORMAT("{\"layers\": [{\"out\": 4}]}", "layers[0]", "field 'type' is missing");
    BAD_FORMAT("{\"layers\": [{\"type\": 3}]}", "field 'type' must be a string");
}

Test(netdesc_parse, bad_values)
{
    BAD_FORMAT("{\"layers\": [{\"type\": \"conv\", \"out\": 4, \"kernel\": 0}]}", "layers[0] (conv)",
               "field 'kernel': 0 is out of range [1, 2147483647]");
    BAD_FORMAT("{\"layers\": [{\"type\": \"conv\", \"out\": 4, \"kernel\": 2.5}]}", "'kernel' must be an integer");
    BAD_FORMAT("{\"layers\": [{\"type\": \"conv\", \"out\": 4, \"kernel\": \"3\"}]}", "'kernel' must be an integer");
    BAD_FORMAT("{\"layers\": [{\"type\": \"conv\", \"out\": 4, \"stride\": 0}]}", "'stride': 0 is out of range");
    BAD_FORMAT("{\"layers\": [{\"type\": \"conv\", \"out\": 4, \"padding\": -1}]}", "'padding': -1 is out of range");
    BAD_FORMAT("{\"layers\": [{\"type\": \"conv\", \"out\": 4, \"dilation\": 0}]}", "'dilation': 0 is out of range");
    BAD_FORMAT("{\"layers\": [{\"type\": \"conv\", \"out\": 4, \"groups\": 0}]}", "'groups': 0 is out of range");
    BAD_FORMAT("{\"layers\": [{\"type\": \"conv\", \"out\": 4, \"bias\": 1}]}", "'bias' must be true or false");
    BAD_FORMAT("{\"layers\": [{\"type\": \"conv\", \"out\": \"classes\"}]}", "'out' must be an integer");
    BAD_FORMAT("{\"layers\": [{\"type\": \"linear\", \"out\": \"class\"}]}", "layers[0] (linear)",
               "'out' must be an integer or \"classes\"");
    BAD_FORMAT("{\"layers\": [{\"type\": \"batchnorm\", \"eps\": 0}]}", "layers[0] (batchnorm)", "'eps': 0 is out");
    BAD_FORMAT("{\"layers\": [{\"type\": \"batchnorm\", \"momentum\": 1.5}]}", "'momentum': 1.5 is out");
    BAD_FORMAT("{\"layers\": [{\"type\": \"batchnorm\", \"affine\": \"yes\"}]}", "'affine' must be true or false");
    BAD_FORMAT("{\"layers\": [{\"type\": \"dropout\", \"p\": 1}]}", "layers[0] (dropout)", "'p': 1 is out of range [0, 1)");
    BAD_FORMAT("{\"layers\": [{\"type\": \"dropout\"}]}", "layers[0] (dropout): field 'p' is missing");
    BAD_FORMAT("{\"layers\": [{\"type\": \"conv\"}]}", "layers[0] (conv): field 'out' is missing");
    BAD_FORMAT("{\"layers\": [{\"type\": \"maxpool\"}]}", "layers[0] (maxpool): field 'kernel' is missing");
    BAD_FORMAT("{\"layers\": [{\"type\": \"maxpool\", \"kernel\": 2, \"padding\": 2}]}",
               "padding 2 is more than half the kernel 2");
    BAD_FORMAT("{\"layers\": [{\"type\": \"residual\"}]}", "layers[0] (residual): field 'layers' is missing");
    BAD_FORMAT("{\"layers\": [{\"type\": \"residual\", \"layers\": []}]}", "layers[0] (residual): 'layers' is empty");
    BAD_FORMAT("{\"layers\": [{\"type\": \"residual\", \"layers\": {}}]}", "'layers' must be a list");
    BAD_FORMAT("{\"layers\": [{\"type\": \"relu\", \"name\": \"a b\"}]}", "layers[0] (relu)", "field 'name' must be");
    BAD_FORMAT("{\"layers\": [{\"type\": \"relu\", \"name\": \"a..b\"}]}", "field 'name' must be");
    BAD_FORMAT("{\"layers\": [{\"type\": \"relu\", \"name\": \"1\"}, {\"type\": \"relu\"}]}",
               "layers[1] (relu): name '1' is already layers[0] (relu)'s");
    BAD_FORMAT("{\"layers\": [{\"type\": \"conv\", \"out\": 4, \"out\": 5}]}", "field 'out' appears twice");
    BAD_FORMAT("{\"layers\": []}", "'layers' is empty");
    BAD_FORMAT("{\"name\": \"x\"}", "field 'layers' is missing");
    BAD_FORMAT("{\"name\": 5, \"layers\": [{\"type\": \"relu\"}]}", "field 'name' must be a string");
    BAD_FORMAT("{\"name\": \"a\\tb\", \"layers\": [{\"type\": \"relu\"}]}", "field 'name' must be a string");
    BAD_FORMAT("{\"name\": \"a\\\"b\", \"layers\": [{\"type\": \"relu\"}]}", "field 'name' must be a string");
    BAD_FORMAT("{\"name\": \"abcdefghijklmnopqrstuvwxyz0123456\", \"layers\": [{\"type\": \"relu\"}]}",
               "1 to 31 printable characters");
    BAD_FORMAT("[{\"type\": \"relu\"}]", "must be a JSON object");
    BAD_FORMAT("{\"layers\": [3]}", "layers[0]: a layer must be a JSON object");
}

Test(netdesc_parse, nesting_depth_is_bounded)
{
    char json[4096] = "{\"layers\": [";
    for (int i = 0; i < 10; i++) strcat(json, "{\"type\": \"residual\", \"layers\": [");
    strcat(json, "{\"type\": \"relu\"}");
    for (int i = 0; i < 10; i++) strcat(json, "]}");
    strcat(json, "]}");
    BAD_FORMAT(json, "residuals nest deeper than 8 levels");
}

/* ------------------------------------------------------------ shapes and sizes */

Test(netdesc_shapes, misfits_name_the_layer_and_shapes)
{
    /* 6x6 -> 4x4 (3x3, no padding): no 1x1 stride maps 6 to 4 */
    static const dp_model_shape six = {2, 6, 6, 3};
    build_fails("{\"layers\": [{\"type\": \"residual\", \"layers\": [{\"type\": \"conv\", \"out\": 2}]},"
                "{\"type\": \"flatten\"}, {\"type\": \"linear\", \"out\": \"classes\"}]}",
                &six, DP_ERR_SHAPE,
                (const char *const[]){"layers[0] (residual)", "[N, 2, 6, 6] to [N, 2, 4, 4]",
                                      "no 1x1 convolution stride takes 6x6 to 4x4", NULL});
    /* a body over vectors that changes the width cannot have a 1x1-conv shortcut */
    BAD_SHAPE("{\"layers\": [{\"type\": \"flatten\"}, {\"type\": \"residual\", \"layers\": "
              "[{\"type\": \"linear\", \"out\": 5}]}, {\"type\": \"linear\", \"out\": \"classes\"}]}",
              "layers[1] (residual)", "[N, 784] to [N, 5]", "needs [N, C, H, W]");
    /* an identity residual over vectors is fine */
    dp_model *m = build_ok("{\"layers\": [{\"type\": \"flatten\"}, {\"type\": \"residual\", \"layers\": "
                           "[{\"type\": \"linear\", \"out\": 784}, {\"type\": \"tanh\"}]},"
                           "{\"type\": \"linear\", \"out\": \"classes\"}]}",
                           &MNIST);
    dp_model_free(m);
    BAD_SHAPE("{\"layers\": [{\"type\": \"residual\", \"layers\": [{\"type\": \"conv\", \"out\": 6, \"groups\": 4}]}]}",
              "layers[0] (residual) layers[0] (conv)", "groups 4 does not divide the input channels 1",
              "[N, 1, 28, 28]");
    BAD_SHAPE("{\"layers\": [{\"type\": \"conv\", \"out\": 4}, {\"type\": \"conv\", \"out\": 6, \"groups\": 4}]}",
              "layers[1] (conv)", "groups 4 does not divide", "output channels 6");
    BAD_SHAPE("{\"layers\": [{\"type\": \"linear\", \"out\": 10}]}", "layers[0] (linear)",
              "input [N, 1, 28, 28] is not [N, F]", "flatten");
    BAD_SHAPE("{\"layers\": [{\"type\": \"flatten\"}, {\"type\": \"conv\", \"out\": 3}]}", "layers[1] (conv)",
              "input [N, 784] is not [N, C, H, W]");
    BAD_SHAPE("{\"layers\": [{\"type\": \"flatten\"}, {\"type\": \"maxpool\", \"kernel\": 2}]}", "layers[1] (maxpool)",
              "[N, 784]");
    BAD_SHAPE("{\"layers\": [{\"type\": \"global_avgpool\"}, {\"type\": \"global_avgpool\"}]}",
              "layers[1] (global_avgpool)", "[N, 1]");
    BAD_SHAPE("{\"layers\": [{\"type\": \"conv\", \"out\": 1, \"kernel\": 29}]}", "layers[0] (conv)",
              "kernel 29 (dilation 1) is larger than the input [N, 1, 28, 28]");
    BAD_SHAPE("{\"layers\": [{\"type\": \"conv\", \"out\": 1, \"kernel\": 3, \"dilation\": 14}]}", "dilation 14");
    BAD_SHAPE("{\"layers\": [{\"type\": \"avgpool\", \"kernel\": 30}]}", "layers[0] (avgpool)", "kernel 30 is larger");
    /* the end must be [N, classes] */
    BAD_SHAPE("{\"layers\": [{\"type\": \"conv\", \"out\": 10}]}", "[N, 10, 26, 26] is not [N, classes]");
    BAD_SHAPE("{\"layers\": [{\"type\": \"flatten\"}, {\"type\": \"linear\", \"out\": 7}]}",
              "[N, 7] is not [N, classes] = [N, 10]");
}

Test(netdesc_shapes, overflow_is_refused)
{
    BAD_FORMAT("{\"layers\": [{\"type\": \"conv\", \"out\": 2147483648}]}", "'out': 2147483648 is out of range");
    BAD_FORMAT("{\"layers\": [{\"type\": \"conv\", \"out\": 1e300}]}", "is out of range");
    /* each value fits an int, their products do not */
    BAD_SHAPE("{\"layers\": [{\"type\": \"flatten\"}, {\"type\": \"linear\", \"out\": 2147483647}]}",
              "layers[1] (linear)", "weight [2147483647, 784] is too large");
    BAD_SHAPE("{\"layers\": [{\"type\": \"conv\", \"out\": 4096, \"kernel\": 1, \"padding\": 500}]}", "layers[0] (conv)",
              "output [N, 4096, 1028, 1028] has more than 2147483647 values");
    BAD_SHAPE("{\"layers\": [{\"type\": \"conv\", \"out\": 1, \"kernel\": 2000000000, \"padding\": 2000000000}]}",
              "layers[0] (conv)", "too large");
    BAD_SHAPE("{\"layers\": [{\"type\": \"conv\", \"out\": 46341, \"kernel\": 1}, {\"type\": \"conv\", \"out\": 46341, "
              "\"kernel\": 1}]}",
              "layers[1] (conv)", "weight [46341, 46341, 1, 1] is too large");
}

Test(netdesc_shapes, parameter_names_fit)
{
    BAD_SHAPE("{\"layers\": [{\"type\": \"residual\", \"name\": \"abcdefghijklmnopqrstuvwxyz0123456789abcdefghij\","
              " \"layers\": [{\"type\": \"conv\", \"name\": \"abcdefghijklmnopqrstuvwxyz\", \"out\": 1, \"padding\": 1}]},"
              "{\"type\": \"flatten\"}, {\"type\": \"linear\", \"out\": \"classes\"}]}",
              "layers[0] (residual) layers[0] (conv)", "parameter name");
}

/* ------------------------------------------------------------ shipped models */

Test(netdesc_zoo, resnet20)
{
    dp_model *m = NULL;
    cr_assert_eq(dp_model_build("resnet20", &MNIST, &m), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(m->params.n, 272186, "PyTorch counts 272,186; got %zu", m->params.n);
    cr_assert_str_eq(m->name, "resnet20");
    /* projection shortcuts where the shape changes, identity elsewhere */
    const dp_param *sc = param(m, "layer2.0.shortcut.0.weight");
    cr_assert_not_null(sc);
    cr_assert_eq(sc->t.ndim, 4);
    cr_assert(sc->t.shape[0] == 32 && sc->t.shape[1] == 16 && sc->t.shape[2] == 1 && sc->t.shape[3] == 1);
    cr_assert_not_null(param(m, "layer3.0.shortcut.1.running_mean"));
    cr_assert_null(param(m, "layer1.0.shortcut.0.weight"));
    cr_assert_null(param(m, "layer2.1.shortcut.0.weight"));
    cr_assert_null(param(m, "conv1.bias"));
    /* use order: a block's body, then its shortcut, then the next block */
    int body = -1, shortcut = -1, next = -1;
    for (int i = 0; i < m->params.count; i++) {
        const char *nm = m->params.items[i]->name;
        if (!strcmp(nm, "layer2.0.body.4.bias")) body = i;
        if (!strcmp(nm, "layer2.0.shortcut.0.weight")) shortcut = i;
        if (!strcmp(nm, "layer2.1.body.0.weight")) next = i;
    }
    cr_assert(body >= 0 && body < shortcut && shortcut < next, "%d %d %d", body, shortcut, next);
    const dp_netdesc_row *rows;
    int n = dp_netdesc_rows(m, &rows);
    cr_assert_eq(rows[n - 1].ndim, 1);
    cr_assert_eq(rows[n - 1].shape[0], 10);
    int stage3 = 0;
    for (int i = 0; i < n; i++)
        if (!strncmp(rows[i].name, "layer3.", 7) && rows[i].depth == 0) {
            cr_assert(rows[i].shape[0] == 64 && rows[i].shape[1] == 7 && rows[i].shape[2] == 7);
            stage3++;
        }
    cr_assert_eq(stage3, 3);
    /* forward of a batch of 2 gives [2, 10] */
    dp_rng r;
    dp_rng_seed(&r, 1, DP_STREAM_INIT, 0);
    dp_params_init(&m->params, &r);
    dp_ctx c;
    dp_ctx_init(&c);
    c.training = 1;
    float x[2 * 28 * 28];
    dp_init_uniform(&r, x, 2 * 28 * 28, -1, 1);
    dp_tensor *out = m->forward(m, &c, dp_tensor_wrap(&c, x, 4, (int[]){2, 1, 28, 28}));
    cr_assert_not_null(out, "%s", dp_errmsg());
    cr_assert(out->ndim == 2 && out->shape[0] == 2 && out->shape[1] == 10);
    for (int i = 0; i < 20; i++) cr_assert(isfinite(out->data[i]));
    dp_ctx_free(&c);
    dp_model_free(m);
    /* 3 input channels: conv1 has 3 x 16 x 9 weights instead of 16 x 9 */
    cr_assert_eq(dp_model_build("resnet20", &(dp_model_shape){3, 32, 32, 10}, &m), DP_OK);
    cr_assert_eq(m->params.n, 272186 + 2 * 16 * 9);
    dp_model_free(m);
}

/* The reference models as they were written by hand: names, shapes and FLOPs. */
Test(netdesc_zoo, mlp_and_cnn_keep_their_layout_and_flops)
{
    dp_model *m = NULL;
    cr_assert_eq(dp_model_build("mlp", &MNIST, &m), DP_OK);
    static const char *const mlp_names[] = {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "fc3.weight",
                                            "fc3.bias"};
    cr_assert_eq(m->params.count, 6);
    for (int i = 0; i < 6; i++) cr_assert_str_eq(m->params.items[i]->name, mlp_names[i]);
    cr_assert_eq(m->params.n, 784 * 512 + 512 + 512 * 256 + 256 + 256 * 10 + 10);
    cr_assert_eq(m->flops_per_sample, 2.0 * (784.0 * 512 + 512.0 * 256 + 256.0 * 10));
    cr_assert_not_null(m->desc);
    dp_model_free(m);
    cr_assert_eq(dp_model_build("cnn", &MNIST, &m), DP_OK);
    static const char *const cnn_names[] = {"conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias",
                                            "fc1.weight",   "fc1.bias",   "fc2.weight",   "fc2.bias"};
    cr_assert_eq(m->params.count, 8);
    for (int i = 0; i < 8; i++) cr_assert_str_eq(m->params.items[i]->name, cnn_names[i]);
    cr_assert_eq(param(m, "fc1.weight")->t.shape[1], 64 * 7 * 7);
    double flat = 64 * 7 * 7;
    cr_assert_eq(m->flops_per_sample,
                 2.0 * (28.0 * 28 * 32 * 1 * 9 + 14.0 * 14 * 64 * 32 * 9 + flat * 128 + 128.0 * 10));
    dp_model_free(m);
}

Test(netdesc_zoo, load)
{
    char *json = NULL;
    cr_assert_eq(dp_netdesc_load("cnn", &json), DP_OK);
    cr_assert(strstr(json, "\"conv1\""));
    free(json);
    cr_assert(dp_netdesc_shipped("resnet20"));
    cr_assert(!dp_netdesc_shipped("resnet20.json"));
    cr_assert_eq(dp_netdesc_load("resnet", &json), DP_ERR_ARG);
    cr_assert(strstr(dp_errmsg(), "unknown model 'resnet'") && strstr(dp_errmsg(), "mlp cnn resnet20"), "%s",
              dp_errmsg());
    cr_assert_null(json);
    cr_assert_eq(dp_netdesc_load("/nonexistent/x.json", &json), DP_ERR_IO);
    cr_assert(strstr(dp_errmsg(), "/nonexistent/x.json"), "%s", dp_errmsg());
    dp_model *m = NULL;
    cr_assert_eq(dp_model_build("/nonexistent/x.json", &MNIST, &m), DP_ERR_IO);
    cr_assert_null(m);
    /* a file: its text goes through the same parser, the file named in messages */
    char path[] = "/tmp/netdesc_testXXXXXX.json";
    int fd = mkstemps(path, 5);
    cr_assert(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs("{\"layers\": [\n{\"type\": \"flatten\"},\n{\"type\": \"linear\", \"out\": \"classes\", \"bais\": 1}]}", f);
    fclose(f);
    cr_assert_eq(dp_model_build(path, &MNIST, &m), DP_ERR_FORMAT);
    cr_assert(strstr(dp_errmsg(), path) && strstr(dp_errmsg(), "layers[1] (linear): unknown field 'bais'"), "%s",
              dp_errmsg());
    unlink(path);
}

/* ------------------------------------------------------------ gradients */

/* Two descriptions between them hold every layer with parameters or a backward of its own.
 * smooth: conv -> batchnorm -> tanh -> maxpool -> residual with a projection (conv stride 2, batchnorm, gelu,
 * conv) -> avgpool -> residual identity (conv, batchnorm without affine, sigmoid) -> global_avgpool -> linear.
 * kinked: relu -> maxpool (run swapped) on the input itself, then conv, dropout, flatten, linear. ReLU sits on
 * the input only: deeper, on batch-normalised values packed around 0, a step of h in a first-layer weight
 * moves hundreds of values across the kink and the finite difference no longer measures the gradient. */
static const char smooth_net[] =
    "{\"layers\": ["
    "{\"type\": \"conv\", \"out\": 3, \"kernel\": 3, \"padding\": 1},"
    "{\"type\": \"batchnorm\"}, {\"type\": \"tanh\"}, {\"type\": \"maxpool\", \"kernel\": 2},"
    "{\"type\": \"residual\", \"layers\": [{\"type\": \"conv\", \"out\": 4, \"stride\": 2, \"padding\": 1},"
    "  {\"type\": \"batchnorm\"}, {\"type\": \"gelu\"}, {\"type\": \"conv\", \"out\": 4, \"padding\": 1}]},"
    "{\"type\": \"avgpool\", \"kernel\": 2, \"stride\": 1, \"padding\": 1},"
    "{\"type\": \"residual\", \"layers\": [{\"type\": \"conv\", \"out\": 4, \"kernel\": 1, \"bias\": false},"
    "  {\"type\": \"batchnorm\", \"affine\": false}, {\"type\": \"sigmoid\"}]},"
    "{\"type\": \"global_avgpool\"}, {\"type\": \"linear\", \"out\": \"classes\"}]}";
static const char kinked_net[] =
    "{\"layers\": [{\"type\": \"relu\"}, {\"type\": \"maxpool\", \"kernel\": 3, \"stride\": 2, \"padding\": 1},"
    "{\"type\": \"conv\", \"out\": 3, \"kernel\": 3, \"dilation\": 2, \"padding\": 2, \"groups\": 1},"
    "{\"type\": \"dropout\", \"p\": 0.25}, {\"type\": \"flatten\"}, {\"type\": \"batchnorm\"},"
    "{\"type\": \"linear\", \"out\": \"classes\"}]}";

static dp_model *grad_model;

static void init_params(float *x, long n, dp_rng *r)
{
    (void)r;
    memcpy(x, grad_model->params.data, (size_t)n * sizeof(float));
}

/* in[0] the batch, in[1] every parameter: the model's tensors are pointed into in[1] on each pass. */
static dp_tensor *grad_forward(dp_ctx *c, dp_tensor **in, void *arg)
{
    dp_model *m = arg;
    for (int i = 0; i < m->params.count; i++) {
        dp_param *p = m->params.items[i];
        if (p->is_buffer) continue;
        p->t.data = in[1]->data + p->offset;
        p->t.grad = in[1]->grad + p->offset;
    }
    c->training = 1;
    return m->forward(m, c, in[0]);
}

static void check_grad(const char *what, const char *json)
{
    static const dp_model_shape in = {2, 8, 8, 3};
    dp_model *m = build_ok(json, &in);
    dp_rng r;
    dp_rng_seed(&r, 7, DP_STREAM_INIT, 0);
    dp_params_init(&m->params, &r);
    grad_model = m;
    gc_input ins[2] = {{.ndim = 4, .shape = {4, 2, 8, 8}, .init = gc_init_distinct},
                       {.ndim = 1, .shape = {(int)m->params.n}, .init = init_params}};
    gc_opts o = gc_defaults();
    o.h = 5e-3;
    o.atol = 2e-3;
    o.rtol = 2e-2;
    o.max_checks = 300;
    CHECK_GRAD(what, 2, ins, grad_forward, m, &o);
    dp_model_free(m);
}

Test(netdesc_grad, residuals_batchnorm_pools, .timeout = DP_TIMEOUT(120))
{
    check_grad("smooth description", smooth_net);
}

Test(netdesc_grad, relu_then_maxpool, .timeout = DP_TIMEOUT(120))
{
    check_grad("kinked description", kinked_net);
}
