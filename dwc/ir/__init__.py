"""Middle end: the typed, batch-symbolic IR every pass and backend works on."""

from dwc.ir.graph import Graph, InputSpec, OutputSpec
from dwc.ir.types import FieldsType, TableType, ValueType, VecType

__all__ = ["FieldsType", "Graph", "InputSpec", "OutputSpec", "TableType", "ValueType", "VecType"]
