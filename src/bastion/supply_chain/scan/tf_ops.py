"""TensorFlow op tables for the SavedModel scan: ops that reach the file system or run Python,
ops whose path input is legitimate only when the loader feeds it, and the standard ops that are
neither (everything else is a custom op that needs a native library: suspicious)."""

from __future__ import annotations

__all__ = ["CODE_OPS", "DEBUG_OPS", "FILE_OPS", "KNOWN_OPS", "PATH_OPS", "PRINT_STREAMS"]

#: Ops that run Python functions registered in the loading process.
CODE_OPS: frozenset[str] = frozenset({"PyFunc", "PyFuncStateless", "EagerPyFunc"})

#: Ops that read, write, list or map files at a path the graph chooses -> what they do.
FILE_OPS: dict[str, str] = {
    "ReadFile": "reads a file",
    "WriteFile": "writes a file",
    "MatchingFiles": "lists files matching a pattern",
    "ImmutableConst": "memory-maps a file",
    "LoadAndRemapMatrix": "reads a checkpoint at a path of its choosing",
    "CreateSummaryFileWriter": "writes event files to a directory",
    "CreateSummaryDbWriter": "writes a database file",
    "WholeFileReader": "reads whole files",
    "WholeFileReaderV2": "reads whole files",
    "TextLineReader": "reads text files",
    "TextLineReaderV2": "reads text files",
    "TFRecordReader": "reads record files",
    "TFRecordReaderV2": "reads record files",
    "FixedLengthRecordReader": "reads record files",
    "FixedLengthRecordReaderV2": "reads record files",
    "TextLineDataset": "reads text files",
    "TFRecordDataset": "reads record files",
    "TFRecordDatasetV2": "reads record files",
    "FixedLengthRecordDataset": "reads record files",
    "FixedLengthRecordDatasetV2": "reads record files",
    "CSVDataset": "reads CSV files",
    "CSVDatasetV2": "reads CSV files",
    "DatasetFromGraph": "builds a dataset from a serialised graph",
    "SnapshotDataset": "writes dataset snapshots",
    "SnapshotDatasetV2": "writes dataset snapshots",
    "SaveDataset": "writes a dataset to disk",
    "SaveDatasetV2": "writes a dataset to disk",
    "LoadDataset": "reads a dataset from disk",
    "CacheDataset": "caches a dataset in a file",
    "CacheDatasetV2": "caches a dataset in a file",
    "ExperimentalMatchingFilesDataset": "lists files matching a pattern",
    "MatchingFilesDataset": "lists files matching a pattern",
    "WriteRawProtoSummary": "writes a summary",
    "RecordInput": "reads record files",
}

#: Debugger ops: they write tensor dumps to their dump root or debug URLs.
DEBUG_OPS: frozenset[str] = frozenset(
    {
        "DebugIdentity",
        "DebugIdentityV2",
        "DebugIdentityV3",
        "DebugNanCount",
        "DebugNumericSummary",
        "DebugNumericSummaryV2",
        "Copy",
        "CopyHost",
    }
)

#: Checkpoint and vocabulary ops -> the input positions that carry a path. They are expected in
#: a SavedModel when that path comes from the tensor the loader feeds (or a function argument).
PATH_OPS: dict[str, tuple[int, ...]] = {
    "Save": (0,),
    "SaveV2": (0,),
    "SaveSlices": (0,),
    "Restore": (0,),
    "RestoreV2": (0,),
    "RestoreSlice": (0,),
    "MergeV2Checkpoints": (0, 1),
    "InitializeTableFromTextFile": (1,),
    "InitializeTableFromTextFileV2": (1,),
}

#: PrintV2 ``output_stream`` values that do not name a file.
PRINT_STREAMS: frozenset[str] = frozenset(
    {"stdout", "stderr", "log(info)", "log(warning)", "log(error)"}
)

_KNOWN = """
Abs Acos Acosh Add AddN AddV2 All Any ApproximateEqual ArgMax ArgMin AsString Asin Asinh Assert
AssertGuard Assign AssignAdd AssignAddVariableOp AssignSub AssignSubVariableOp AssignVariableOp
Atan Atan2 Atanh AudioSpectrogram AvgPool AvgPool3D AvgPool3DGrad AvgPoolGrad BatchMatMul
BatchMatMulV2 BatchMatMulV3 BatchNormWithGlobalNormalization BatchToSpace BatchToSpaceND
Betainc BiasAdd BiasAddGrad BiasAddV1 Bincount Bitcast BitwiseAnd BitwiseOr BitwiseXor
BroadcastArgs BroadcastGradientArgs BroadcastTo Bucketize Case Cast Ceil CheckNumerics
CheckNumericsV2 Cholesky ClipByValue CombinedNonMaxSuppression Complex ComplexAbs Concat
ConcatOffset ConcatV2 Conj ConjugateTranspose Const ControlTrigger Conv Conv2D
Conv2DBackpropFilter Conv2DBackpropInput Conv3D Conv3DBackpropFilterV2 Conv3DBackpropInputV2
Cos Cosh CropAndResize Cross Cumprod Cumsum CumulativeLogsumexp DecodeBase64 DecodeBmp
DecodeCSV DecodeCompressed DecodeGif DecodeImage DecodeJSONExample DecodeJpeg DecodePng
DecodeRaw DecodeWav DeleteSessionTensor DepthToSpace DepthwiseConv2dNative
DepthwiseConv2dNativeBackpropFilter DepthwiseConv2dNativeBackpropInput Dequantize
DestroyResourceOp DestroyTemporaryVariable Diag DiagPart Digamma Dilation2D DisableCopyOnRead
Div DivNoNan DrawBoundingBoxes DrawBoundingBoxesV2 DynamicPartition DynamicStitch EditDistance
Einsum Elu EluGrad EmptyTensorList EncodeBase64 EncodeJpeg EncodePng EncodeWav EnsureShape
Enter Equal Erf Erfc Exit Exp ExpandDims Expm1 ExtractGlimpse ExtractImagePatches FFT FFT2D
FFT3D FakeParam FakeQuantWithMinMaxArgs FakeQuantWithMinMaxVars
FakeQuantWithMinMaxVarsPerChannel Fill Fingerprint Floor FloorDiv FloorMod FusedBatchNorm
FusedBatchNormGrad FusedBatchNormGradV2 FusedBatchNormGradV3 FusedBatchNormV2
FusedBatchNormV3 Gather GatherNd GatherV2 GreaterEqual Greater GuaranteeConst HashTable
HashTableV2 HistogramFixedWidth IFFT IFFT2D IFFT3D IRFFT IRFFT2D Identity IdentityN If Igamma
Igammac Imag InTopK InTopKV2 InitializeTable InitializeTableV2 InplaceAdd InplaceSub
InplaceUpdate Inv InvGrad Invert InvertPermutation IsFinite IsInf IsNan IsVariableInitialized
L2Loss LRN LRNGrad LeakyRelu LeakyReluGrad LeftShift Less LessEqual Lgamma LinSpace ListDiff
Log Log1p LogSoftmax LogicalAnd LogicalNot LogicalOr LookupTableExport LookupTableExportV2
LookupTableFind LookupTableFindV2 LookupTableImport LookupTableImportV2 LookupTableInsert
LookupTableInsertV2 LookupTableRemoveV2 LookupTableSize LookupTableSizeV2 LoopCond
LowerBound MatMul MatrixBandPart MatrixDeterminant MatrixDiag MatrixDiagPart
MatrixDiagPartV2 MatrixDiagPartV3 MatrixDiagV2 MatrixDiagV3 MatrixInverse MatrixSetDiag
MatrixSetDiagV2 MatrixSetDiagV3 MatrixSolve MatrixTriangularSolve Max MaxPool MaxPool3D
MaxPoolGrad MaxPoolGradV2 MaxPoolV2 MaxPoolWithArgmax Maximum Mean Merge Min Minimum
MirrorPad MirrorPadGrad Mod Mul MulNoNan MultiDeviceIterator Multinomial
MutableDenseHashTable MutableDenseHashTableV2 MutableHashTable MutableHashTableOfTensors
MutableHashTableOfTensorsV2 MutableHashTableV2 Ndtri Neg NextAfter NextIteration NoOp
NonMaxSuppression NonMaxSuppressionV2 NonMaxSuppressionV3 NonMaxSuppressionV4
NonMaxSuppressionV5 NotEqual OneHot OnesLike OptionalFromValue OptionalGetValue
OptionalHasValue OptionalNone Pack Pad PadV2 ParallelConcat ParallelDynamicStitch
ParseExample ParseExampleV2 ParseSequenceExample ParseSequenceExampleV2 ParseSingleExample
ParseSingleSequenceExample ParseTensor PartitionedCall Placeholder PlaceholderV2
PlaceholderWithDefault Polygamma PopulationCount Pow PreventGradient Print PrintV2 Prod Qr
QuantizeAndDequantize QuantizeAndDequantizeV2 QuantizeAndDequantizeV3
QuantizeAndDequantizeV4 QuantizeV2 QuantizedConv2D QuantizedMatMul RFFT RFFT2D
RaggedGather RaggedRange RaggedTensorFromVariant RaggedTensorToSparse RaggedTensorToTensor
RaggedTensorToVariant RandomGamma RandomPoisson RandomPoissonV2 RandomShuffle
RandomStandardNormal RandomUniform RandomUniformInt Range Rank ReadVariableOp Real RealDiv
Reciprocal ReciprocalGrad Recv RefIdentity RegexFullMatch RegexReplace Relu Relu6 Relu6Grad
ReluGrad RemoteCall Reshape ResizeArea ResizeBicubic ResizeBilinear ResizeBilinearGrad
ResizeNearestNeighbor ResizeNearestNeighborGrad ResourceApplyAdam ResourceApplyGradientDescent
ResourceGather ResourceGatherNd ResourceScatterAdd ResourceScatterNdAdd
ResourceScatterNdUpdate ResourceScatterUpdate ResourceStridedSliceAssign Reverse
ReverseSequence ReverseV2 RightShift Rint RngReadAndSkip RngSkip Roll Round Rsqrt RsqrtGrad
SampleDistortedBoundingBox SampleDistortedBoundingBoxV2 ScatterNd ScatterNdNonAliasingAdd
SegmentMax SegmentMean SegmentMin SegmentProd SegmentSum Select SelectV2 Selu SeluGrad Send
SerializeTensor Shape ShapeN ShardedFilename ShardedFilespec Sigmoid SigmoidGrad Sign Sin
Sinh Size Slice Snapshot Softmax SoftmaxCrossEntropyWithLogits Softplus SoftplusGrad
Softsign SoftsignGrad SpaceToBatch SpaceToBatchND SpaceToDepth SparseFillEmptyRows
SparseReshape SparseSegmentMean SparseSegmentSqrtN SparseSegmentSum
SparseSoftmaxCrossEntropyWithLogits SparseTensorDenseMatMul SparseToDense Split SplitV Sqrt
SqrtGrad Square SquaredDifference Squeeze Stack StackPopV2 StackPushV2 StackV2
StatefulPartitionedCall StatefulStandardNormalV2 StatefulUniform StatefulUniformFullInt
StatefulUniformInt StatelessIf StatelessMultinomial StatelessRandomGetAlg
StatelessRandomGetKeyCounter StatelessRandomNormal StatelessRandomNormalV2
StatelessRandomUniform StatelessRandomUniformInt StatelessRandomUniformIntV2
StatelessRandomUniformV2 StatelessTruncatedNormal StatelessTruncatedNormalV2 StatelessWhile
StaticRegexFullMatch StaticRegexReplace StopGradient StridedSlice StridedSliceGrad
StringFormat StringJoin StringLength StringLower StringSplit StringSplitV2 StringStrip
StringToHashBucket StringToHashBucketFast StringToHashBucketStrong StringToNumber
StringUpper Sub Substr Sum Svd Switch SymbolicGradient Tan Tanh TanhGrad TensorArrayConcatV3
TensorArrayGatherV3 TensorArrayGradV3 TensorArrayReadV3 TensorArrayScatterV3
TensorArraySizeV3 TensorArraySplitV3 TensorArrayV3 TensorArrayWriteV3 TensorListConcatV2
TensorListElementShape TensorListFromTensor TensorListGather TensorListGetItem
TensorListLength TensorListPopBack TensorListPushBack TensorListReserve TensorListResize
TensorListScatterIntoExistingList TensorListScatterV2 TensorListSetItem TensorListStack
TensorScatterAdd TensorScatterMax TensorScatterMin TensorScatterSub TensorScatterUpdate
TensorStridedSliceUpdate Tile TopK TopKV2 Transpose TridiagonalSolve TruncateDiv TruncateMod
TruncatedNormal Unique UniqueV2 UniqueWithCounts Unpack UnravelIndex UnsortedSegmentMax
UnsortedSegmentMin UnsortedSegmentProd UnsortedSegmentSum UpperBound VarHandleOp
VarIsInitializedOp Variable VariableShape VariableV2 Where While Xdivy Xlog1py Xlogy
ZerosLike Zeta _Arg _Recv _Retval _Send
"""

#: Standard ops that neither touch files nor run Python (a deliberately incomplete list: an op
#: missing here is reported as suspicious, never as clean).
KNOWN_OPS: frozenset[str] = frozenset(_KNOWN.split()) | frozenset(PATH_OPS)
