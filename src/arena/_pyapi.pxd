# CPython macros on borrowed pointers: reading a frame's reference count must not take a
# reference of its own (Cython's cpython/*.pxd declare these with owned objects).

from cpython.ref cimport PyObject


cdef extern from "Python.h":
    Py_ssize_t Py_REFCNT(PyObject* o)
    PyObject* PyList_GET_ITEM(object lst, Py_ssize_t i)
    Py_ssize_t PyList_GET_SIZE(object lst)
    bint PyLong_CheckExact(object o)
    bint PyTuple_CheckExact(object o)
    bint PyGILState_Check() nogil
    int PyList_SetSlice(object lst, Py_ssize_t low, Py_ssize_t high, PyObject* items) except -1
    bint PyUnicode_CheckExact(object o)
    bint PyFloat_CheckExact(object o)
    bint PyList_CheckExact(object o)
    double PyFloat_AS_DOUBLE(PyObject* o)
    long long PyLong_AsLongLongAndOverflow(PyObject* o, int* overflow)
    void Py_XINCREF(PyObject* o)
    void Py_XDECREF(PyObject* o)
