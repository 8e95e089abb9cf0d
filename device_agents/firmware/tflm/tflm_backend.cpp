// TFLite Micro backend; see tflm_backend.h. Not compiled here (no TFLite Micro sources offline).
//
// Every untrusted model goes through the flatbuffers Verifier before any of its offsets are
// followed, so a corrupt or malicious upload ends as ERROR BAD_MODEL, not as a fault. Ops are
// checked against the resolver before the interpreter is built, so a missing op is named in
// ERROR UNSUPPORTED_OP instead of a generic AllocateTensors failure.
#include "tflm_backend.h"

#include <string.h>

#include <new>

#include "../proto/proto_fmt.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/micro/micro_profiler_interface.h"
#include "tensorflow/lite/schema/schema_generated.h"
#include "tensorflow/lite/schema/schema_utils.h"

namespace {

constexpr uint32_t kMaxTensors = 8;
constexpr uint32_t kOpCount = 40;

// Records one event per operator of the last Invoke with the board's sample timer. TFLite Micro
// calls it around every op (ScopedMicroProfiler in MicroGraph::InvokeSubgraph); its cost, two
// timer reads and two stores per op, is part of every Invoke sample and is stated in README.md.
class OpProfiler : public tflite::MicroProfilerInterface {
 public:
  void SetClock(uint32_t (*now)()) { now_ = now; }
  void Clear() { count_ = 0; }
  uint32_t count() const { return count_; }
  const char* tag(uint32_t i) const { return i < count_ ? tags_[i] : nullptr; }
  uint32_t ticks(uint32_t i) const { return i < count_ ? ticks_[i] : 0; }

  uint32_t BeginEvent(const char* tag) override {
    if (count_ >= HARNESS_MAX_PROFILE_OPS) return HARNESS_MAX_PROFILE_OPS;  // dropped, never overflows
    tags_[count_] = tag;
    ticks_[count_] = now_();  // start time until EndEvent turns it into a duration
    return count_++;
  }

  void EndEvent(uint32_t handle) override {
    const uint32_t t = now_();
    if (handle < count_) ticks_[handle] = t - ticks_[handle];
  }

 private:
  uint32_t (*now_)() = nullptr;
  uint32_t count_ = 0;
  const char* tags_[HARNESS_MAX_PROFILE_OPS] = {};
  uint32_t ticks_[HARNESS_MAX_PROFILE_OPS] = {};
};

struct State {
  const TflmBoard* board = nullptr;
  uint32_t upload_bytes = 0;
  tflite::MicroInterpreter* interp = nullptr;
  const tflite::Model* model = nullptr;
  uint8_t n_in = 0, n_out = 0;
  uint8_t* in_tensor[kMaxTensors] = {};
  uint8_t* staged[kMaxTensors] = {};
  uint32_t in_bytes[kMaxTensors] = {};
  const uint8_t* out_tensor[kMaxTensors] = {};
  uint8_t* out_copy[kMaxTensors] = {};
  uint32_t out_bytes[kMaxTensors] = {};
  OpProfiler profiler;
};

State g;
alignas(16) uint8_t g_arena[HARNESS_ARENA_BYTES];
alignas(16) uint8_t g_model_store[HARNESS_MODEL_STORE_BYTES];
alignas(16) uint8_t g_staging[HARNESS_STAGING_BYTES];
alignas(tflite::MicroInterpreter) uint8_t g_interp_storage[sizeof(tflite::MicroInterpreter)];
tflite::MicroMutableOpResolver<kOpCount> g_resolver;

// The ops this firmware carries: what common int8/float CNNs, DS-CNNs and MobileNets need.
// Adding one here (and raising kOpCount) is how a model refused with UNSUPPORTED_OP is fixed.
void register_ops() {
  g_resolver.AddAdd();
  g_resolver.AddAveragePool2D();
  g_resolver.AddConcatenation();
  g_resolver.AddConv2D();
  g_resolver.AddDepthwiseConv2D();
  g_resolver.AddDequantize();
  g_resolver.AddExpandDims();
  g_resolver.AddFullyConnected();
  g_resolver.AddHardSwish();
  g_resolver.AddLogistic();
  g_resolver.AddMaxPool2D();
  g_resolver.AddMean();
  g_resolver.AddMul();
  g_resolver.AddPad();
  g_resolver.AddQuantize();
  g_resolver.AddRelu();
  g_resolver.AddRelu6();
  g_resolver.AddReshape();
  g_resolver.AddShape();
  g_resolver.AddSoftmax();
  g_resolver.AddSqueeze();
  g_resolver.AddStridedSlice();
  g_resolver.AddSub();
  g_resolver.AddTanh();
  g_resolver.AddTranspose();
}

int fail(proto_error_t* err, int code, uint32_t detail, const char* fmt, const char* s = "",
         unsigned long a = 0, unsigned long b = 0) {
  err->detail = detail;
  proto_fmt(err->message, sizeof err->message, fmt, s, a, b);
  return code;
}

void unload() {
  if (g.interp != nullptr) {
    g.interp->~MicroInterpreter();
    g.interp = nullptr;
  }
  g.model = nullptr;
  g.n_in = g.n_out = 0;
}

// ------------------------------------------------------------------ proto_backend_t functions

void info(void* ctx, proto_info_t* out) {
  (void)ctx;
  const TflmBoard* b = g.board;
  memset(out, 0, sizeof *out);
  out->cpu_hz = b->cpu_hz;
  out->timer_hz = b->timer_hz;
  out->timer_resolution_ns = b->timer_resolution_ns;
  out->arena_bytes = HARNESS_ARENA_BYTES;
  out->max_model_bytes = HARNESS_MODEL_STORE_BYTES;
  out->max_batch = 0;
  out->flags = static_cast<uint16_t>(PROTO_FLAG_PROFILER | (b->cycle_counter ? PROTO_FLAG_CYCLE_COUNTER : 0) |
                                     (b->builtin_model != nullptr ? PROTO_FLAG_BUILTIN : 0));
  out->board = b->board;
  out->cpu = b->cpu;
  out->tflm_version = HARNESS_TFLM_VERSION;
}

void reset(void* ctx) {
  (void)ctx;
  unload();
  g.upload_bytes = 0;
}

int upload_begin(void* ctx, uint32_t model_bytes, proto_error_t* err) {
  (void)ctx;
  unload();  // the store is about to be overwritten: the interpreter must not point into it
  if (model_bytes > HARNESS_MODEL_STORE_BYTES)
    return fail(err, PROTO_E_MODEL_TOO_LARGE, HARNESS_MODEL_STORE_BYTES, "model store holds %s%lu bytes", "",
                HARNESS_MODEL_STORE_BYTES);
  g.upload_bytes = model_bytes;
  return PROTO_E_OK;
}

int upload_write(void* ctx, uint32_t offset, const uint8_t* data, uint32_t len, proto_error_t* err) {
  (void)ctx;
  if (static_cast<uint64_t>(offset) + len > g.upload_bytes)
    return fail(err, PROTO_E_BAD_ARGUMENT, g.upload_bytes, "write outside the model%s", "");
  memcpy(g_model_store + offset, data, len);
  return PROTO_E_OK;
}

const uint8_t* upload_data(void* ctx) {
  (void)ctx;
  return g_model_store;
}

const char* tensor_name(int which, uint8_t index) {
  const tflite::SubGraph* sg = g.model->subgraphs()->Get(0);
  const flatbuffers::Vector<int32_t>* ids = which == 0 ? sg->inputs() : sg->outputs();
  if (ids == nullptr || sg->tensors() == nullptr || index >= ids->size()) return "";
  const int32_t id = ids->Get(index);
  if (id < 0 || static_cast<uint32_t>(id) >= sg->tensors()->size()) return "";
  const flatbuffers::String* name = sg->tensors()->Get(id)->name();
  return name != nullptr ? name->c_str() : "";
}

// Carves staged inputs and output copies out of g_staging, 16-byte aligned.
int plan_staging(proto_error_t* err) {
  uint32_t used = 0;
  for (uint8_t k = 0; k < g.n_in + g.n_out; k++) {
    const bool is_in = k < g.n_in;
    const uint8_t i = is_in ? k : static_cast<uint8_t>(k - g.n_in);
    TfLiteTensor* t = is_in ? g.interp->input(i) : g.interp->output(i);
    if (t == nullptr || t->data.raw == nullptr)
      return fail(err, PROTO_E_BAD_MODEL, 0, "%s tensor %lu has no data after AllocateTensors",
                  is_in ? "input" : "output", i);
    const uint32_t bytes = static_cast<uint32_t>(t->bytes);
    const uint32_t need = (bytes + 15u) & ~15u;
    if (need > HARNESS_STAGING_BYTES - used)
      return fail(err, PROTO_E_UNSUPPORTED, HARNESS_STAGING_BYTES,
                  "inputs and outputs need more than %s%lu staging bytes: raise HARNESS_STAGING_BYTES", "",
                  HARNESS_STAGING_BYTES);
    if (is_in) {
      g.in_tensor[i] = reinterpret_cast<uint8_t*>(t->data.raw);
      g.staged[i] = g_staging + used;
      g.in_bytes[i] = bytes;
      memset(g.staged[i], 0, bytes);  // section 3.4: inputs are zero after a load
    } else {
      g.out_tensor[i] = reinterpret_cast<const uint8_t*>(t->data.raw);
      g.out_copy[i] = g_staging + used;
      g.out_bytes[i] = bytes;
      memset(g.out_copy[i], 0, bytes);
    }
    used += need;
  }
  return PROTO_E_OK;
}

int load(void* ctx, int builtin, proto_model_t* out, proto_error_t* err) {
  (void)ctx;
  unload();
  const TflmBoard* b = g.board;
  const uint8_t* data = builtin ? b->builtin_model : g_model_store;
  const uint32_t len = builtin ? b->builtin_model_bytes : g.upload_bytes;
  if (data == nullptr || len == 0) return fail(err, PROTO_E_UNSUPPORTED, 0, "no model to load%s", "");
  const uint32_t t0 = b->now();

  flatbuffers::Verifier verifier(data, len);
  if (!tflite::VerifyModelBuffer(verifier))
    return fail(err, PROTO_E_BAD_MODEL, 0, "not a valid TFLite flatbuffer (%s%lu bytes failed verification)", "",
                len);
  const tflite::Model* model = tflite::GetModel(data);
  if (model->version() != TFLITE_SCHEMA_VERSION)
    return fail(err, PROTO_E_BAD_MODEL, model->version(), "schema version %s%lu, this firmware reads %lu", "",
                model->version(), TFLITE_SCHEMA_VERSION);
  if (model->subgraphs() == nullptr || model->subgraphs()->size() == 0)
    return fail(err, PROTO_E_BAD_MODEL, 0, "model has no subgraph%s", "");
  if (model->operator_codes() != nullptr) {
    for (const tflite::OperatorCode* code : *model->operator_codes()) {
      const tflite::BuiltinOperator op = tflite::GetBuiltinCode(code);
      if (op == tflite::BuiltinOperator_CUSTOM) {
        const char* name = code->custom_code() != nullptr ? code->custom_code()->c_str() : "?";
        if (g_resolver.FindOp(name) == nullptr)
          return fail(err, PROTO_E_UNSUPPORTED_OP, 0, "custom op %s is not in this firmware's op resolver", name);
      } else if (g_resolver.FindOp(op) == nullptr) {
        return fail(err, PROTO_E_UNSUPPORTED_OP, static_cast<uint32_t>(op),
                    "op %s is not in this firmware's op resolver (tflm/tflm_backend.cpp register_ops)",
                    tflite::EnumNameBuiltinOperator(op));
      }
    }
  }

  g.profiler.Clear();
  g.interp = new (g_interp_storage)
      tflite::MicroInterpreter(model, g_resolver, g_arena, HARNESS_ARENA_BYTES, nullptr, &g.profiler);
  if (g.interp->AllocateTensors() != kTfLiteOk) {
    unload();
    return fail(err, PROTO_E_ARENA_TOO_SMALL, 0,
                "AllocateTensors failed with a %s%lu-byte arena (or an op rejected its tensors): raise "
                "HARNESS_ARENA_BYTES",
                "", HARNESS_ARENA_BYTES);
  }
  g.model = model;
  if (g.interp->inputs_size() > kMaxTensors || g.interp->outputs_size() > kMaxTensors) {
    unload();
    return fail(err, PROTO_E_UNSUPPORTED, kMaxTensors, "more than %s%lu inputs or outputs", "", kMaxTensors);
  }
  g.n_in = static_cast<uint8_t>(g.interp->inputs_size());
  g.n_out = static_cast<uint8_t>(g.interp->outputs_size());
  const int rc = plan_staging(err);
  if (rc != PROTO_E_OK) {
    unload();
    return rc;
  }
  const tflite::SubGraph* sg = model->subgraphs()->Get(0);
  out->model = data;
  out->model_bytes = len;
  out->arena_used_bytes = static_cast<uint32_t>(g.interp->arena_used_bytes());
  out->n_inputs = g.n_in;
  out->n_outputs = g.n_out;
  out->n_ops = static_cast<uint16_t>(sg->operators() != nullptr ? sg->operators()->size() : 0);
  out->init_ticks = b->now() - t0;  // verification + interpreter creation + AllocateTensors
  return PROTO_E_OK;
}

int tensor(void* ctx, int which, uint8_t index, proto_tensor_t* out, proto_error_t* err) {
  (void)ctx;
  if (g.interp == nullptr) return fail(err, PROTO_E_BAD_STATE, 0, "no model loaded%s", "");
  TfLiteTensor* t = which == 0 ? g.interp->input(index) : g.interp->output(index);
  if (t == nullptr) return fail(err, PROTO_E_BAD_INDEX, which == 0 ? g.n_in : g.n_out, "no tensor%s", "");
  out->dtype = static_cast<uint8_t>(t->type);  // TfLiteType codes are the protocol's dtype codes
  const int ndims = t->dims != nullptr ? t->dims->size : 0;
  out->ndims = static_cast<uint8_t>(ndims < 0 ? 0 : (ndims > 255 ? 255 : ndims));
  for (int i = 0; i < ndims && i < static_cast<int>(PROTO_MAX_DIMS); i++) out->dims[i] = t->dims->data[i];
  out->scale = t->params.scale;
  out->zero_point = t->params.zero_point;
  out->bytes = which == 0 ? g.in_bytes[index] : g.out_bytes[index];
  out->name = tensor_name(which, index);
  return PROTO_E_OK;
}

uint8_t* staged_input(void* ctx, uint8_t index) {
  (void)ctx;
  return index < g.n_in ? g.staged[index] : nullptr;
}

const uint8_t* output_data(void* ctx, uint8_t index) {
  (void)ctx;
  return index < g.n_out ? g.out_copy[index] : nullptr;
}

// The application loop of SERIAL_PROTOCOL.md 3.8: identical in both modes except Invoke.
int run(void* ctx, uint8_t mode, uint16_t count, proto_samples_t* rows, proto_error_t* err) {
  (void)ctx;
  if (g.interp == nullptr) return fail(err, PROTO_E_BAD_STATE, 0, "no model loaded%s", "");
  uint32_t (*now)() = g.board->now;
  for (uint16_t n = 0; n < count; n++) {
    TfLiteStatus status = kTfLiteOk;
    g.profiler.Clear();  // outside the timed span
    const uint32_t t0 = now();
    for (uint8_t i = 0; i < g.n_in; i++) memcpy(g.in_tensor[i], g.staged[i], g.in_bytes[i]);
    const uint32_t t1 = now();
    if (mode == PROTO_MODE_WITH) status = g.interp->Invoke();
    const uint32_t t2 = now();
    for (uint8_t i = 0; i < g.n_out; i++) memcpy(g.out_copy[i], g.out_tensor[i], g.out_bytes[i]);
    const uint32_t t3 = now();
    if (status != kTfLiteOk)
      return fail(err, PROTO_E_INVOKE_FAILED, static_cast<uint32_t>(status),
                  "Invoke returned status %s%lu at iteration %lu", "", static_cast<unsigned long>(status), n);
    if (proto_samples_put(rows, t3 - t0, t1 - t0, mode == PROTO_MODE_WITH ? t2 - t1 : 0u, t3 - t2) != 0)
      return fail(err, PROTO_E_INTERNAL, 0, "sample batch full%s", "");
  }
  return PROTO_E_OK;
}

// EVAL (SERIAL_PROTOCOL.md 3.11): one iteration of run()'s loop with Invoke, untimed, no sample row;
// the profiler records it like any Invoke, so GET_PROFILE afterwards describes this one.
int eval(void* ctx, proto_error_t* err) {
  (void)ctx;
  if (g.interp == nullptr) return fail(err, PROTO_E_BAD_STATE, 0, "no model loaded%s", "");
  g.profiler.Clear();
  for (uint8_t i = 0; i < g.n_in; i++) memcpy(g.in_tensor[i], g.staged[i], g.in_bytes[i]);
  const TfLiteStatus status = g.interp->Invoke();
  for (uint8_t i = 0; i < g.n_out; i++) memcpy(g.out_copy[i], g.out_tensor[i], g.out_bytes[i]);
  if (status != kTfLiteOk)
    return fail(err, PROTO_E_INVOKE_FAILED, static_cast<uint32_t>(status), "Invoke returned status %s%lu", "",
                static_cast<unsigned long>(status));
  return PROTO_E_OK;
}

// STREAM (SERIAL_PROTOCOL.md 3.12): the board's sample timer; the protocol layer runs the
// schedule on it and each frame as run(mode 0, 1), so nothing else is needed here.
uint32_t timer_ticks(void* ctx) {
  (void)ctx;
  return g.board->now();
}

int profile(void* ctx, uint16_t op_index, uint32_t* ticks, const char** name, proto_error_t* err) {
  (void)ctx;
  (void)err;
  // Events beyond what the last Invoke recorded (control-flow ops, or more ops than
  // HARNESS_MAX_PROFILE_OPS) are reported as 0 ticks, named so nobody mistakes them for data.
  *ticks = g.profiler.ticks(op_index);
  *name = op_index < g.profiler.count() && g.profiler.tag(op_index) != nullptr ? g.profiler.tag(op_index)
                                                                                : "NOT_RECORDED";
  return PROTO_E_OK;
}

}  // namespace

void tflm_backend_init(const TflmBoard* board, proto_backend_t* backend) {
  static bool ops_registered = false;
  if (!ops_registered) {
    register_ops();
    ops_registered = true;
  }
  g.board = board;
  g.profiler.SetClock(board->now);
  memset(backend, 0, sizeof *backend);
  backend->ctx = &g;
  backend->info = info;
  backend->reset = reset;
  backend->upload_begin = upload_begin;
  backend->upload_write = upload_write;
  backend->upload_data = upload_data;
  backend->load = load;
  backend->tensor = tensor;
  backend->staged_input = staged_input;
  backend->run = run;
  backend->output_data = output_data;
  backend->profile = profile;
  backend->eval = eval;
  backend->ticks = timer_ticks;
}
